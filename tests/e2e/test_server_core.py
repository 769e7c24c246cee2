"""End to end against the real llmring-server: real rings, only the provider faked.

Covers the seed's testing list (1)-(5) and exactly one row on every path of issue 2.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import warnings

import anthropic
import httpx
import openai
import pytest
from _support.records import CapturingRing, request
from llmring.schemas import Message
from llmring.service_extended import LLMRingSession

from llmring_usage import LLMRingExtended, log_usage, with_usage_logging

pytestmark = pytest.mark.server

# Registry prices (llmring_usage.testing.REGISTRY_MODELS) in dollars per million tokens: in, out.
PRICES = {
    ("openai", "gpt-4o-mini"): (0.15, 0.60),
    ("openai", "gpt-4o"): (2.50, 10.00),
    ("anthropic", "claude-haiku-4-5-20251001"): (1.00, 5.00),
    ("anthropic", "claude-sonnet-4-5-20250929"): (3.00, 15.00),
}
IN_TOKENS, OUT_TOKENS = 14, 286


def _expected_cost(provider: str, model: str) -> float:
    price_in, price_out = PRICES[(provider, model)]
    return IN_TOKENS * price_in / 1e6 + OUT_TOKENS * price_out / 1e6


def _usage_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llmring_usage" and r.levelno >= logging.WARNING]


async def _stats(server, key: str) -> dict:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as client:
        answer = await client.get("/api/v1/stats")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _wait_until(condition, timeout_s: float = 5.0) -> bool:
    """Poll `condition()` on the event loop (no fixed sleep) until true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class TestSeedList:
    """The seed's testing list, item by item."""

    async def test_1_chat_with_conversation_shows_in_stats(self, make_ring, server):
        """(1) chat_with_conversation on a real LLMRingSession is counted by GET /api/v1/stats."""
        key = server.new_api_key()
        session = with_usage_logging(
            make_ring(cls=LLMRingSession, server_url=server.url, api_key=key), origin="seed-1"
        )
        conversation_id = await session.create_conversation(title="seed 1")
        assert conversation_id is not None
        await session.chat_with_conversation(request("openai:gpt-4o-mini"), conversation_id)
        stats = await _stats(server, key)
        assert stats["summary"]["total_requests"] == 1
        assert stats["summary"]["total_tokens"] == IN_TOKENS + OUT_TOKENS
        assert float(stats["summary"]["total_cost"]) == pytest.approx(
            _expected_cost("openai", "gpt-4o-mini"), abs=1e-9
        )
        assert stats["by_origin"]["seed-1"]["requests"] == 1
        (model_stats,) = stats["by_model"].values()
        assert (model_stats["requests"], model_stats["input_tokens"], model_stats["output_tokens"]) == (
            1,
            IN_TOKENS,
            OUT_TOKENS,
        )

    async def test_2_several_models_and_providers(self, make_ring, server):
        """(2) Two OpenAI and two Anthropic models: one row each, right model, provider and cost."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        for provider_name, model in PRICES:
            await ring.chat(request(f"{provider_name}:{model}"))
        rows = await server.rows(key)
        assert sorted((r["provider"], r["model"]) for r in rows) == sorted(PRICES)
        for row in rows:
            assert (row["input_tokens"], row["output_tokens"]) == (IN_TOKENS, OUT_TOKENS)
            assert row["cost"] == pytest.approx(_expected_cost(row["provider"], row["model"]), abs=1e-12)
            assert row["metadata"]["model_alias"] == f"{row['provider']}:{row['model']}"

    async def test_3_server_down_chat_succeeds_with_one_warning(self, make_ring, server, caplog):
        """(3) Server stopped: three chats return llmring's own responses, one warning line in all.

        The warning has no traceback and no API key; once the server is back, a flush delivers all
        three records.
        """
        caplog.set_level(logging.WARNING, logger="llmring_usage")
        key = server.new_api_key()
        bare = make_ring(cls=CapturingRing)
        ring = with_usage_logging(bare, server_url=server.url, api_key=key)
        server.stop()
        for _ in range(3):
            response = await ring.chat(request("openai:gpt-4o-mini"))
            assert response is bare.last_response
            assert response.usage["completion_tokens"] == OUT_TOKENS
        warnings_seen = _usage_warnings(caplog)
        assert len(warnings_seen) == 1, [w.getMessage() for w in warnings_seen]
        (warning,) = warnings_seen
        assert warning.exc_info is None and warning.stack_info is None
        assert key not in warning.getMessage()
        assert "\n" not in warning.getMessage()
        server.start()
        report = await ring.usage_logger.aflush(timeout_s=10.0)
        assert (report.delivered, report.pending) == (3, 0)
        assert await server.count(key) == 3

    async def test_3_refused_port_costs_nothing_but_a_warning(self, make_ring, refusing_port, caplog):
        """(3) A URL where connections are refused: chats succeed, one warning for five calls."""
        caplog.set_level(logging.WARNING, logger="llmring_usage")
        ring = with_usage_logging(make_ring(), server_url=refusing_port.url, api_key="sk-secret-abc")
        for _ in range(5):
            assert (await ring.chat(request("anthropic:claude-haiku-4-5-20251001"))).content
        (warning,) = _usage_warnings(caplog)
        assert "sk-secret-abc" not in warning.getMessage()
        assert warning.exc_info is None
        assert ring.usage_logger.journal.counts().delivered == 0

    async def test_4_conversation_id_is_linked(self, make_ring, server):
        """(4) The row's id_at_origin and metadata.conversation_id are the conversation's id."""
        key = server.new_api_key()
        session = make_ring(cls=LLMRingExtended, server_url=server.url, api_key=key)
        conversation_id = await session.create_conversation(title="seed 4")
        await session.chat_with_conversation(request("fast"), conversation_id=conversation_id)
        (row,) = await server.rows(key)
        assert row["id_at_origin"] == str(conversation_id)
        assert row["metadata"]["conversation_id"] == str(conversation_id)
        assert row["alias"] == "fast"

    async def test_4_fifty_concurrent_conversations_on_one_object(self, make_ring, server):
        """(4) 50 concurrent chat_with_conversation calls on ONE session each log their own id."""
        key = server.new_api_key()
        session = make_ring(cls=LLMRingExtended, server_url=server.url, api_key=key)
        ids = [str(uuid.uuid4()) for _ in range(50)]
        # Each call's question names its conversation, so the provider's log can be matched too.
        await asyncio.gather(
            *(
                session.chat_with_conversation(request("openai:gpt-4o-mini", f"question for {c}"), c)
                for c in ids
            )
        )
        rows = await server.rows(key)
        assert len(rows) == 50
        assert sorted(r["id_at_origin"] for r in rows) == sorted(ids)
        assert all(r["metadata"]["conversation_id"] == r["id_at_origin"] for r in rows)

    async def test_5_stored_cost_is_tokens_times_registry_prices(self, make_ring, server):
        """(5) gpt-4o-mini, 14 in / 286 out: stored cost 14*0.15/1e6 + 286*0.60/1e6 = 0.0001737."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        await ring.chat(request("openai:gpt-4o-mini"))
        (row,) = await server.rows(key)
        assert row["cost"] == pytest.approx(14 * 0.15 / 1e6 + 286 * 0.60 / 1e6, abs=1e-12)
        assert row["cost"] == pytest.approx(0.0001737, abs=1e-12)

    async def test_5_cached_tokens_are_stored_and_priced(self, make_ring, server, provider):
        """(5) 10 of 14 prompt tokens cached: cached_input_tokens 10, 4*0.15 + 10*0.075 + 286*0.60."""
        provider.cached_input_tokens = 10
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        await ring.chat(request("openai:gpt-4o-mini"))
        (row,) = await server.rows(key)
        assert (row["input_tokens"], row["cached_input_tokens"]) == (14, 10)
        assert row["cost"] == pytest.approx((4 * 0.15 + 10 * 0.075 + 286 * 0.60) / 1e6, abs=1e-12)

    async def test_5_anthropic_cache_reads_are_priced_at_the_read_rate(self, make_ring, server, provider):
        """(5) Haiku, 10 cache reads of 14: 4*$1 + 10*$0.10 + 286*$5 per million (not llmring's figure)."""
        provider.cached_input_tokens = 10
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        await ring.chat(request("anthropic:claude-haiku-4-5-20251001"))
        (row,) = await server.rows(key)
        assert (row["input_tokens"], row["cached_input_tokens"]) == (14, 10)
        assert row["cost"] == pytest.approx((4 * 1.00 + 10 * 0.10 + 286 * 5.00) / 1e6, abs=1e-12)


class TestExactlyOnce:
    """Every path of a successful call leaves exactly one row; a failed call leaves none."""

    async def test_ring_with_builtin_logging_logs_once(self, make_ring, server):
        """A ring built with server_url (llmring logs by itself) and wrapped: one row, ours."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(server_url=server.url, api_key=key), origin="ours")
        await ring.chat(request("openai:gpt-4o-mini"))
        rows = await server.rows(key)
        assert len(rows) == 1
        assert rows[0]["origin"] == "ours"
        assert rows[0]["latency_ms"] is not None

    async def test_chat_with_alias_logs_once(self, make_ring, server):
        """chat_with_alias -> chat: one row with alias "smart" and the real model."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(server_url=server.url, api_key=key))
        await ring.chat_with_alias("smart", [Message(role="user", content="hi")])
        (row,) = await server.rows(key)
        assert (row["alias"], row["model"]) == ("smart", "claude-haiku-4-5-20251001")

    async def test_chat_with_conversation_logs_once(self, make_ring, server):
        """A session with builtin logging, wrapped: chat_with_conversation -> chat is one row."""
        key = server.new_api_key()
        session = with_usage_logging(make_ring(cls=LLMRingSession, server_url=server.url, api_key=key))
        conversation_id = await session.create_conversation(title="once")
        await session.chat_with_conversation(request("openai:gpt-4o-mini"), conversation_id)
        assert await server.count(key) == 1

    async def test_double_wrap_logs_once(self, make_ring, server):
        """with_usage_logging(with_usage_logging(ring)): one row per chat."""
        key = server.new_api_key()
        ring = with_usage_logging(
            with_usage_logging(make_ring(), server_url=server.url, api_key=key),
            server_url=server.url,
            api_key=server.new_api_key(),
        )
        await ring.chat(request("openai:gpt-4o-mini"))
        await ring.chat(request("openai:gpt-4o"))
        assert await server.count(key) == 2

    async def test_llmring_extended_logs_with_no_extra_code(self, make_ring, server):
        """LLMRingExtended(server_url, api_key): chat and chat_with_conversation one row each.

        No DeprecationWarning is emitted on the way.
        """
        key = server.new_api_key()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = make_ring(cls=LLMRingExtended, server_url=server.url, api_key=key, origin="my-app")
            conversation_id = await session.create_conversation(title="ext")
            await session.chat(request("openai:gpt-4o-mini"))
            await session.chat_with_conversation(
                request("anthropic:claude-haiku-4-5-20251001"), conversation_id
            )
        assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
        rows = await server.rows(key)
        assert [(r["provider"], r["origin"], r["id_at_origin"]) for r in rows] == [
            ("openai", "my-app", None),
            ("anthropic", "my-app", str(conversation_id)),
        ]

    async def test_failed_call_raises_the_same_and_logs_nothing(self, make_ring, server, provider):
        """A provider 500: the wrapped ring raises the bare ring's exception type; no row at all."""
        key = server.new_api_key()
        provider.fail_next(500)
        with pytest.raises(Exception) as bare_error:
            await make_ring().chat(request("openai:gpt-4o-mini"))
        ring = with_usage_logging(make_ring(server_url=server.url, api_key=key))
        provider.fail_next(500)
        with pytest.raises(Exception) as wrapped_error:
            await ring.chat(request("openai:gpt-4o-mini"))
        assert type(wrapped_error.value) is type(bare_error.value)
        await ring.usage_logger.aflush(timeout_s=2.0)
        assert await server.count(key) == 0

    async def test_receipt_is_the_row(self, make_ring, server):
        """usage_logger.last_receipt.log_id is the id of the row the server stored."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        await ring.chat(request("openai:gpt-4o-mini"))
        (row,) = await server.rows(key)
        receipt = ring.usage_logger.last_receipt
        assert receipt.log_id == row["id"]
        assert receipt.record_id == row["metadata"]["record_id"]
        assert receipt.cost == pytest.approx(row["cost"], abs=1e-12)

    async def test_latency_ms_is_the_calls_wall_time(self, make_ring, server, provider):
        """A provider that takes 0.2 s gives latency_ms >= 200 (and below a generous bound)."""
        provider.delay_s = 0.2
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        started = time.monotonic()
        await ring.chat(request("openai:gpt-4o-mini"))
        elapsed_ms = (time.monotonic() - started) * 1000
        (row,) = await server.rows(key)
        assert 200 <= row["latency_ms"] <= elapsed_ms + 1

    async def test_record_metadata_is_complete(self, make_ring, server):
        """metadata has model_alias, finish_reason, record id, client timestamp and the user's keys."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key, metadata={"env": "test"})
        await ring.chat(request("fast"))
        (row,) = await server.rows(key)
        meta = row["metadata"]
        assert meta["model_alias"] == "openai:gpt-4o-mini"
        assert meta["finish_reason"] == "stop"
        assert meta["env"] == "test"
        assert len(meta["record_id"]) == 32
        client_time = meta["client_timestamp"]
        assert client_time[:10] == row["created_at"].isoformat()[:10]


class TestStreams:
    """chat_stream yields what it yielded before and logs one row however it ends."""

    ANTHROPIC = "anthropic:claude-haiku-4-5-20251001"
    OPENAI = "openai:gpt-4o-mini"

    async def test_same_chunks_as_an_unwrapped_ring(self, make_ring, server):
        """The wrapped stream's chunks equal the bare ring's, chunk for chunk."""
        bare = [
            (c.delta, c.finish_reason, c.usage)
            async for c in make_ring().chat_stream(request(self.ANTHROPIC))
        ]
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        wrapped = [
            (c.delta, c.finish_reason, c.usage) async for c in ring.chat_stream(request(self.ANTHROPIC))
        ]
        assert wrapped == bare
        assert await server.count(key) == 1

    async def test_anthropic_stream_logs_provider_usage(self, make_ring, server):
        """A full Anthropic stream: 14/286 from the provider, usage_source "provider", TTFT set."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        async for _ in ring.chat_stream(request(self.ANTHROPIC)):
            pass
        (row,) = await server.rows(key)
        assert (row["input_tokens"], row["output_tokens"]) == (IN_TOKENS, OUT_TOKENS)
        meta = row["metadata"]
        assert meta["usage_source"] == "provider"
        assert meta["stream_end"] == "completed"
        assert 0 <= meta["time_to_first_token_ms"] <= row["latency_ms"]
        assert row["cost"] == pytest.approx(
            _expected_cost("anthropic", "claude-haiku-4-5-20251001"), abs=1e-12
        )

    async def test_openai_stream_without_usage_is_logged_estimated(self, make_ring, server, provider):
        """llmring drops OpenAI's usage chunk: the call is still logged, tokens estimated."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        content = "".join([c.delta async for c in ring.chat_stream(request(self.OPENAI, "x" * 40))])
        assert content == provider.content
        (row,) = await server.rows(key)
        assert row["metadata"]["usage_source"] == "estimated"
        assert row["input_tokens"] == 10  # 40 request characters / 4
        assert row["output_tokens"] == -(-len(provider.content) // 4)  # ceil(chars / 4)
        assert (row["provider"], row["model"]) == ("openai", "gpt-4o-mini")

    async def test_break_logs_one_row(self, make_ring, server):
        """Breaking out after two chunks: one row once the stream is collected, ending closed_early."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        seen = 0
        async for _ in ring.chat_stream(request(self.ANTHROPIC)):
            seen += 1
            if seen == 2:
                break
        assert await _wait_until(lambda: ring.usage_logger.counters.queued >= 1)
        await ring.usage_logger.aflush()
        (row,) = await server.rows(key)
        assert row["metadata"]["stream_end"] == "closed_early"
        assert row["metadata"]["chunks"] == 2

    async def test_aclose_logs_one_row(self, make_ring, server):
        """aclose() after one chunk: one row, ending closed_early."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        stream = ring.chat_stream(request(self.OPENAI))
        first = await stream.__anext__()
        assert first is not None
        await stream.aclose()
        await ring.usage_logger.aflush()
        (row,) = await server.rows(key)
        assert row["metadata"]["stream_end"] == "closed_early"
        assert row["metadata"]["usage_source"] == "estimated"

    async def test_provider_error_mid_stream_logs_one_row(self, make_ring, server, provider):
        """The provider cuts the stream after 2 chunks: the caller sees the bare ring's error, one row."""
        provider.stream_error_after(2)
        with pytest.raises(Exception) as bare_error:
            async for _ in make_ring().chat_stream(request(self.ANTHROPIC)):
                pass
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        provider.stream_error_after(2)
        received = 0
        with pytest.raises(Exception) as wrapped_error:
            async for chunk in ring.chat_stream(request(self.ANTHROPIC)):
                received += bool(chunk.delta)
        assert type(wrapped_error.value) is type(bare_error.value)
        assert received == 2
        await ring.usage_logger.aflush()
        (row,) = await server.rows(key)
        assert row["metadata"]["stream_end"] == "error"
        assert row["metadata"]["usage_source"] == "estimated"

    async def test_cancelled_task_logs_one_row(self, make_ring, server):
        """The consuming task is cancelled mid-stream: one row."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        got_one = asyncio.Event()

        async def consume():
            async for _ in ring.chat_stream(request(self.ANTHROPIC)):
                got_one.set()
                await asyncio.Event().wait()  # stuck processing the first chunk

        task = asyncio.create_task(consume())
        await got_one.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _wait_until(lambda: ring.usage_logger.counters.queued >= 1)
        await ring.usage_logger.aflush()
        assert await server.count(key) == 1

    async def test_stream_on_ring_with_builtin_logging_logs_once(self, make_ring, server):
        """A ring built with server_url streams: llmring's own log steps aside, one row in all."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(server_url=server.url, api_key=key), origin="ours")
        async for _ in ring.chat_stream(request(self.ANTHROPIC)):
            pass
        await ring.usage_logger.aflush()
        rows = await server.rows(key)
        assert [(r["origin"], r["output_tokens"]) for r in rows] == [("ours", OUT_TOKENS)]

    async def test_chat_with_alias_streaming_logs_once(self, make_ring, server):
        """chat_with_alias(..., stream=True) returns a stream that logs one row with the alias."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(server_url=server.url, api_key=key))
        stream = await ring.chat_with_alias("smart", [Message(role="user", content="hi")], stream=True)
        chunks = [c async for c in stream]
        assert "".join(c.delta for c in chunks)
        await ring.usage_logger.aflush()
        (row,) = await server.rows(key)
        assert (row["alias"], row["model"], row["output_tokens"]) == (
            "smart",
            "claude-haiku-4-5-20251001",
            OUT_TOKENS,
        )

    async def test_failed_stream_before_any_chunk_logs_nothing(self, make_ring, server, provider):
        """A stream whose request fails (500) yields nothing, raises, and leaves no row."""
        key = server.new_api_key()
        ring = with_usage_logging(make_ring(), server_url=server.url, api_key=key)
        provider.fail_next(500)
        with pytest.raises(Exception):  # noqa: B017 - whatever llmring raises, unchanged
            async for _ in ring.chat_stream(request(self.OPENAI)):
                pass
        await ring.usage_logger.aflush()
        assert await server.count(key) == 0


class TestDecorator:
    """@log_usage on sync and async functions, with llmring and raw SDK responses."""

    async def test_async_function_returning_an_llmring_response(self, make_ring, server):
        """An async function returning ring.chat()'s LLMResponse: one row with its usage."""
        key = server.new_api_key()
        ring = make_ring()

        @log_usage(server_url=server.url, api_key=key, origin="deco")
        async def ask(prompt):
            return await ring.chat(request("anthropic:claude-haiku-4-5-20251001", prompt))

        response = await ask("hello")
        assert response.content
        (row,) = await server.rows(key)
        assert (row["provider"], row["model"], row["origin"]) == (
            "anthropic",
            "claude-haiku-4-5-20251001",
            "deco",
        )
        assert row["cost"] == pytest.approx(
            _expected_cost("anthropic", "claude-haiku-4-5-20251001"), abs=1e-12
        )
        assert row["latency_ms"] is not None

    async def test_sync_function_returning_a_raw_openai_response(self, server, provider, registry_url):
        """A sync function calling the real OpenAI SDK: one row priced from the registry."""
        key = server.new_api_key()
        client = openai.OpenAI(base_url=provider.openai_base_url, api_key="sk-fake")

        @log_usage(server_url=server.url, api_key=key, registry_url=registry_url)
        def ask(prompt):
            return client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )

        try:
            completion = ask("hello")
        finally:
            client.close()
        assert completion.usage.completion_tokens == OUT_TOKENS
        (row,) = await server.rows(key)
        assert (row["provider"], row["model"]) == ("openai", "gpt-4o-mini")
        assert row["cost"] == pytest.approx(_expected_cost("openai", "gpt-4o-mini"), abs=1e-12)
        assert row["latency_ms"] is not None

    async def test_async_function_returning_a_raw_anthropic_message(self, server, provider, registry_url):
        """An async function calling the real Anthropic SDK: one row, provider anthropic."""
        key = server.new_api_key()
        client = anthropic.AsyncAnthropic(base_url=provider.anthropic_base_url, api_key="sk-fake")

        @log_usage(server_url=server.url, api_key=key, registry_url=registry_url)
        async def ask(prompt):
            return await client.messages.create(
                model="claude-haiku-4-5-20251001",
                max_tokens=512,
                messages=[{"role": "user", "content": prompt}],
            )

        try:
            message = await ask("hello")
        finally:
            await client.close()
        assert message.usage.output_tokens == OUT_TOKENS
        (row,) = await server.rows(key)
        assert (row["provider"], row["model"]) == ("anthropic", "claude-haiku-4-5-20251001")
        assert row["cost"] == pytest.approx(
            _expected_cost("anthropic", "claude-haiku-4-5-20251001"), abs=1e-12
        )


class TestSlowServer:
    """A slow or dead server costs a call at most the budget the user set."""

    async def test_hung_server_costs_at_most_the_budget(self, make_ring, hung_server, caplog):
        """timeout_s=0.2 against a server that never answers: each chat returns within 0.2 s + 1.5 s."""
        caplog.set_level(logging.WARNING, logger="llmring_usage")
        ring = with_usage_logging(make_ring(), server_url=hung_server.url, api_key="k", timeout_s=0.2)
        await ring.chat(request("openai:gpt-4o-mini"))  # warm the provider connection and registry
        for _ in range(3):
            started = time.monotonic()
            response = await ring.chat(request("openai:gpt-4o-mini"))
            elapsed = time.monotonic() - started
            assert response.usage["completion_tokens"] == OUT_TOKENS
            assert elapsed < 0.2 + 1.5, elapsed
        assert hung_server.accepted >= 1
        assert len(_usage_warnings(caplog)) <= 1
