"""with_usage_logging(ring): a transparent wrapt proxy that logs one record per call."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging

import httpx
import pytest
import respx
from _support.records import CapturingRing, journal_records, request
from llmring import LLMRing
from llmring.schemas import LLMResponse, Message, StreamChunk
from llmring.service_extended import LLMRingSession

from llmring_usage import ConfigurationError, UsageLogger, UsageLoggingRing, with_usage_logging

GPT_4O_MINI_COST = 14 * 0.15 / 1e6 + 286 * 0.60 / 1e6  # = 0.0001737
FAKE_SERVER = "http://usage.invalid"


class DuckRing:
    """Not an LLMRing: just an async chat(request, profile=None) and an async chat_stream."""

    def __init__(self, *, chunks=("Hello", " world"), hang_after_chunks: bool = False):
        self.chunks = chunks
        self.hang_after_chunks = hang_after_chunks
        self.colour = "blue"
        self.returned: list[LLMResponse] = []

    async def chat(self, request, profile=None):
        response = LLMResponse(
            content="hi",
            model="openai:gpt-4o-mini",
            usage={"prompt_tokens": 14, "completion_tokens": 286, "cost": 0.0001737},
            finish_reason="stop",
        )
        self.returned.append(response)
        return response

    async def chat_stream(self, request, profile=None):
        for piece in self.chunks:
            yield StreamChunk(delta=piece, model="openai:gpt-4o-mini")
        if self.hang_after_chunks:
            await asyncio.Event().wait()
        yield StreamChunk(
            delta="", finish_reason="stop", usage={"prompt_tokens": 14, "completion_tokens": 286}
        )


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llmring_usage" and r.levelno >= logging.WARNING]


class TestTransparency:
    """The proxy is the ring for every purpose but its chat methods."""

    def test_is_an_instance_of_the_rings_class(self, make_ring):
        """isinstance(proxy, LLMRing) holds and __wrapped__ is the very ring."""
        ring = make_ring()
        proxy = with_usage_logging(ring)
        assert isinstance(proxy, LLMRing)
        assert isinstance(proxy, UsageLoggingRing)
        assert proxy.__wrapped__ is ring

    def test_attributes_pass_through_both_ways(self, make_ring):
        """Reading gives the ring's attributes; writing sets them on the ring."""
        ring = make_ring(origin="my-app")
        proxy = with_usage_logging(ring)
        assert proxy.origin == "my-app"
        assert proxy.providers is ring.providers
        proxy.some_setting = 42
        assert ring.some_setting == 42

    def test_chat_methods_stay_coroutine_functions(self, make_ring):
        """inspect.iscoroutinefunction still holds for chat and chat_with_alias."""
        proxy = with_usage_logging(make_ring())
        assert inspect.iscoroutinefunction(proxy.chat)
        assert inspect.iscoroutinefunction(proxy.chat_with_alias)

    def test_double_wrapping_returns_the_same_proxy(self, make_ring):
        """Wrapping a wrapped ring returns it unchanged: one proxy, one logger."""
        proxy = with_usage_logging(make_ring())
        again = with_usage_logging(proxy, origin="other")
        assert again is proxy
        assert again.usage_logger is proxy.usage_logger

    def test_missing_method_is_not_invented(self, make_ring):
        """A plain LLMRing has no chat_with_conversation, and neither has its proxy."""
        proxy = with_usage_logging(make_ring())
        assert not hasattr(proxy, "chat_with_conversation")
        with pytest.raises(AttributeError):
            proxy.chat_with_conversation  # noqa: B018

    def test_session_gets_chat_with_conversation_intercepted(self, make_ring):
        """An LLMRingSession's proxy is still a session and exposes chat_with_conversation."""
        proxy = with_usage_logging(make_ring(cls=LLMRingSession))
        assert isinstance(proxy, LLMRingSession)
        assert inspect.iscoroutinefunction(proxy.chat_with_conversation)

    def test_repr_names_the_ring(self, make_ring):
        """The proxy's repr says what it wraps."""
        ring = make_ring()
        assert repr(ring) in repr(with_usage_logging(ring))

    def test_exposes_a_usage_logger(self, make_ring):
        """ring.usage_logger is the UsageLogger doing the work."""
        assert isinstance(with_usage_logging(make_ring()).usage_logger, UsageLogger)

    @pytest.mark.parametrize("not_a_ring", [object(), "ring", 42])
    def test_refuses_objects_without_async_chat(self, not_a_ring):
        """Wrapping something with no async chat raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="async chat"):
            with_usage_logging(not_a_ring)

    def test_refuses_a_sync_chat(self):
        """A chat that is not a coroutine function is refused at wrap time."""

        class SyncRing:
            def chat(self, request, profile=None):
                return None

        with pytest.raises(ConfigurationError):
            with_usage_logging(SyncRing())


class TestOneRecordPerCall:
    """Every successful call leaves exactly one record (journal-only here, no server)."""

    async def test_response_is_the_object_llmring_returned(self, make_ring):
        """The caller gets the very response object the ring's chat returned."""
        ring = make_ring(cls=CapturingRing)
        response = await with_usage_logging(ring).chat(request("openai:gpt-4o-mini"))
        assert response is ring.last_response

    async def test_chat_logs_one_complete_record(self, make_ring):
        """One chat: one record with tokens, registry cost, latency, alias-free model, metadata."""
        ring = with_usage_logging(make_ring(), origin="unit", metadata={"team": "search"})
        await ring.chat(request("openai:gpt-4o-mini"))
        (record,) = journal_records(ring.usage_logger)
        assert (record.provider, record.model, record.origin) == ("openai", "gpt-4o-mini", "unit")
        assert (record.input_tokens, record.output_tokens, record.cached_input_tokens) == (14, 286, 0)
        assert record.cost == pytest.approx(GPT_4O_MINI_COST, abs=1e-12)
        assert record.alias is None and record.profile is None
        assert record.latency_ms is not None and record.latency_ms >= 0
        meta = record.metadata
        assert meta["model_alias"] == "openai:gpt-4o-mini"
        assert meta["finish_reason"] == "stop"
        assert meta["usage_source"] == "provider"
        assert meta["team"] == "search"
        assert meta["record_id"] and meta["client_timestamp"]

    async def test_alias_call_records_alias_profile_and_real_model(self, make_ring):
        """chat() with alias "fast": model is gpt-4o-mini, alias "fast", profile kept."""
        ring = with_usage_logging(make_ring())
        await ring.chat(request("fast"), profile="default")
        (record,) = journal_records(ring.usage_logger)
        assert (record.model, record.alias, record.profile) == ("gpt-4o-mini", "fast", "default")

    async def test_chat_with_alias_logs_once(self, make_ring):
        """chat_with_alias calls chat inside: still one record, carrying the alias."""
        ring = with_usage_logging(make_ring())
        await ring.chat_with_alias("smart", [Message(role="user", content="hi")])
        (record,) = journal_records(ring.usage_logger)
        assert (record.provider, record.model, record.alias) == (
            "anthropic",
            "claude-haiku-4-5-20251001",
            "smart",
        )

    async def test_cached_tokens_from_openai_details_are_recorded(self, make_ring, provider):
        """OpenAI's prompt_tokens_details.cached_tokens (10) becomes cached_input_tokens."""
        provider.cached_input_tokens = 10
        ring = with_usage_logging(make_ring())
        await ring.chat(request("openai:gpt-4o-mini"))
        (record,) = journal_records(ring.usage_logger)
        assert (record.input_tokens, record.cached_input_tokens) == (14, 10)

    async def test_cached_tokens_from_anthropic_cache_reads_are_recorded(self, make_ring, provider):
        """Anthropic reports 4 input + 10 cache reads: recorded as 14 input, 10 cached."""
        provider.cached_input_tokens = 10
        ring = with_usage_logging(make_ring())
        await ring.chat(request("anthropic:claude-haiku-4-5-20251001"))
        (record,) = journal_records(ring.usage_logger)
        assert (record.input_tokens, record.cached_input_tokens) == (14, 10)

    async def test_a_failed_call_raises_the_same_error_and_logs_nothing(self, make_ring, provider):
        """A provider 500 raises the same exception type as an unwrapped ring, and no record."""
        bare = make_ring()
        provider.fail_next(500)
        with pytest.raises(Exception) as bare_error:
            await bare.chat(request("openai:gpt-4o-mini"))
        ring = with_usage_logging(make_ring())
        provider.fail_next(500)
        with pytest.raises(Exception) as wrapped_error:
            await ring.chat(request("openai:gpt-4o-mini"))
        assert type(wrapped_error.value) is type(bare_error.value)
        assert journal_records(ring.usage_logger) == []

    async def test_duck_typed_ring_is_logged(self):
        """Any object with an async chat works; the response returned is the duck's own object."""
        duck = DuckRing()
        proxy = with_usage_logging(duck, origin="duck")
        response = await proxy.chat(request("openai:gpt-4o-mini"))
        assert response is duck.returned[-1]
        assert proxy.colour == "blue"
        (record,) = journal_records(proxy.usage_logger)
        assert (record.model, record.origin, record.cost) == ("gpt-4o-mini", "duck", 0.0001737)

    async def test_concurrent_calls_each_log_one_record(self, make_ring):
        """20 concurrent chats give 20 records with 20 distinct record ids."""
        ring = with_usage_logging(make_ring())
        await asyncio.gather(*(ring.chat(request("openai:gpt-4o-mini")) for _ in range(20)))
        records = journal_records(ring.usage_logger)
        assert len(records) == 20
        assert len({r.record_id for r in records}) == 20

    async def test_conversation_ids_are_per_call(self, make_ring):
        """Concurrent chat_with_conversation calls on one session each record their own id."""
        ring = with_usage_logging(make_ring(cls=LLMRingSession))
        ids = [f"conv-{i}" for i in range(10)]
        await asyncio.gather(
            *(ring.chat_with_conversation(request("openai:gpt-4o-mini", f"q{c}"), c) for c in ids)
        )
        records = journal_records(ring.usage_logger)
        assert sorted(r.id_at_origin for r in records) == sorted(ids)
        assert all(r.metadata["conversation_id"] == r.id_at_origin for r in records)


class TestStreamsUnit:
    """A stream logs once however it ends (a duck ring controls exactly when it stops)."""

    async def test_read_to_the_end(self):
        """A full read yields every chunk and logs the provider's usage, ending "completed"."""
        proxy = with_usage_logging(DuckRing())
        chunks = [c async for c in proxy.chat_stream(request("openai:gpt-4o-mini"))]
        assert [c.delta for c in chunks] == ["Hello", " world", ""]
        (record,) = journal_records(proxy.usage_logger)
        assert (record.input_tokens, record.output_tokens) == (14, 286)
        assert record.metadata["stream_end"] == "completed"
        assert record.metadata["usage_source"] == "provider"
        assert record.metadata["time_to_first_token_ms"] >= 0

    async def test_cancelled_while_waiting_for_the_next_chunk(self):
        """A task cancelled inside the stream logs one estimated record, ending "cancelled"."""
        proxy = with_usage_logging(DuckRing(hang_after_chunks=True))
        received: list[str] = []
        got_two = asyncio.Event()

        async def consume():
            async for chunk in proxy.chat_stream(request("openai:gpt-4o-mini", "x" * 40)):
                received.append(chunk.delta)
                if len(received) == 2:
                    got_two.set()

        task = asyncio.create_task(consume())
        await got_two.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (record,) = journal_records(proxy.usage_logger)
        assert record.metadata["stream_end"] == "cancelled"
        assert record.metadata["usage_source"] == "estimated"
        assert record.input_tokens == 10  # 40 request characters / 4
        assert record.output_tokens == 3  # ceil(len("Hello world") / 4)

    async def test_stream_with_no_chunk_logs_nothing(self):
        """A stream that ends before its first chunk is not a call that produced anything."""
        proxy = with_usage_logging(DuckRing(chunks=()))
        stream = proxy.chat_stream(request("openai:gpt-4o-mini"))
        await stream.aclose()
        assert journal_records(proxy.usage_logger) == []


class TestServerFaultsUnit:
    """Faults at the server boundary (injected with respx on our httpx client) never reach callers."""

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param(httpx.Response(500, json={"detail": "boom"}), id="500"),
            pytest.param(httpx.Response(401, json={"detail": "bad key"}), id="401"),
            pytest.param(httpx.ReadTimeout("timed out"), id="timeout"),
            pytest.param(httpx.ConnectError("Connection refused"), id="connection-refused"),
        ],
    )
    async def test_chat_succeeds_with_one_warning_line(self, make_ring, caplog, fault):
        """Three chats succeed, one warning line in all (no traceback, no API key), records kept."""
        caplog.set_level(logging.WARNING, logger="llmring_usage")
        api_key = "sk-usage-secret-0123456789"
        with respx.mock(assert_all_mocked=False, assert_all_called=False) as mock:
            mock.get(f"{FAKE_SERVER}/api/v1/logs").mock(return_value=httpx.Response(200, json=[]))
            route = mock.post(f"{FAKE_SERVER}/api/v1/log")
            if isinstance(fault, httpx.Response):
                route.mock(return_value=fault)
            else:
                route.mock(side_effect=fault)
            ring = with_usage_logging(make_ring(), server_url=FAKE_SERVER, api_key=api_key, timeout_s=1.0)
            responses = [await ring.chat(request("openai:gpt-4o-mini")) for _ in range(3)]
            assert all(r.usage["completion_tokens"] == 286 for r in responses)
            assert route.called
            warnings = _warnings(caplog)
            assert len(warnings) == 1, [w.getMessage() for w in warnings]
            (warning,) = warnings
            assert warning.exc_info is None
            assert api_key not in warning.getMessage()
            assert "\n" not in warning.getMessage()
            assert ring.usage_logger.last_receipt is None
            report = ring.usage_logger.flush(timeout_s=1.0)
            assert (report.delivered, report.pending) == (0, 3)
            assert len(_warnings(caplog)) == 1

    async def test_unreadable_logs_answer_does_not_break_flush(self, make_ring, caplog):
        """A timed-out send is checked with GET /logs; an HTML answer there is a delivery failure.

        Regression: the JSON error escaped from flush() (and would end the worker's loop).
        """
        caplog.set_level(logging.WARNING, logger="llmring_usage")
        with respx.mock(assert_all_mocked=False) as mock:
            mock.get(f"{FAKE_SERVER}/api/v1/logs").mock(
                return_value=httpx.Response(200, text="<html>proxy login</html>")
            )
            mock.post(f"{FAKE_SERVER}/api/v1/log").mock(side_effect=httpx.ReadTimeout("timed out"))
            ring = with_usage_logging(make_ring(), server_url=FAKE_SERVER, api_key="k")
            await ring.chat(request("openai:gpt-4o-mini"))
            report = ring.usage_logger.flush(timeout_s=1.0)
            assert (report.delivered, report.pending) == (0, 1)
            assert ring.usage_logger.journal.counts().check_needed == 1
            assert len(_warnings(caplog)) == 1

    async def test_success_keeps_the_receipt(self, make_ring):
        """A 200 answer is kept as the last receipt, with the server's log_id."""
        with respx.mock(assert_all_mocked=False) as mock:
            route = mock.post(f"{FAKE_SERVER}/api/v1/log").mock(
                return_value=httpx.Response(
                    200, json={"log_id": "row-1", "cost": 0.0001737, "timestamp": "2026-01-01T00:00:00"}
                )
            )
            ring = with_usage_logging(make_ring(), server_url=FAKE_SERVER, api_key="k")
            await ring.chat(request("openai:gpt-4o-mini"))
            assert ring.usage_logger.last_receipt.log_id == "row-1"
            sent = route.calls.last.request
            assert sent.headers["X-API-Key"] == "k"
            body = json.loads(sent.content)
            assert body["cost"] == pytest.approx(GPT_4O_MINI_COST, abs=1e-12)
            ring.usage_logger.flush(timeout_s=2.0)
            assert ring.usage_logger.journal.counts().delivered == 1
