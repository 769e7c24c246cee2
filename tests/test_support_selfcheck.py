"""Self-checks of the test infrastructure: the fake provider, the real server, the fault tools."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from _support.faults import FaultProxy, HungServer, RefusingPort
from _support.server import RealServer
from llmring.schemas import LLMRequest, Message

from llmring_usage.testing import FakeProvider

EXPECTED_COST_GPT_4O_MINI = 0.0001737


def _request(model: str) -> LLMRequest:
    return LLMRequest(model=model, messages=[Message(role="user", content="What is usage logging?")])


def _log_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_tokens": 14,
        "output_tokens": 286,
        "cost": EXPECTED_COST_GPT_4O_MINI,
        "latency_ms": 123,
        "origin": "selfcheck",
        "id_at_origin": "call-1",
        "metadata": {"case": "selfcheck"},
    }
    body.update(overrides)
    return body


class TestFakeProviderWithRealRing:
    """A real LLMRing talks to the FakeProvider as it would to the real providers."""

    async def test_openai_chat_reports_usage_and_cost(self, make_ring, provider):
        """openai:gpt-4o-mini answers with 14/286 tokens priced at 0.0001737 by the registry."""
        ring = make_ring()
        response = await ring.chat(_request("openai:gpt-4o-mini"))
        assert response.content
        assert response.usage["prompt_tokens"] == 14
        assert response.usage["completion_tokens"] == 286
        assert response.usage["cost"] == pytest.approx(EXPECTED_COST_GPT_4O_MINI, abs=1e-12)
        assert await ring.calculate_cost(response) is not None
        assert [path for path, _ in provider.requests] == ["/v1/chat/completions"]
        assert provider.requests[0][1]["model"] == "gpt-4o-mini"

    async def test_anthropic_chat_reports_usage(self, make_ring, provider):
        """anthropic:claude-haiku-4-5-20251001 answers with 14/286 tokens through /v1/messages."""
        ring = make_ring()
        response = await ring.chat(_request("anthropic:claude-haiku-4-5-20251001"))
        assert response.usage["prompt_tokens"] == 14
        assert response.usage["completion_tokens"] == 286
        assert response.usage["cost"] == pytest.approx(14 * 1e-6 + 286 * 5e-6, abs=1e-12)
        assert [path for path, _ in provider.requests] == ["/v1/messages"]

    async def test_alias_from_lockfile_resolves(self, make_ring, provider):
        """The lockfile alias ``fast`` reaches gpt-4o-mini on the fake provider."""
        ring = make_ring()
        response = await ring.chat(_request("fast"))
        assert provider.requests[-1][1]["model"] == "gpt-4o-mini"
        assert response.usage["cost"] == pytest.approx(EXPECTED_COST_GPT_4O_MINI, abs=1e-12)

    async def test_openai_stream_ends_without_usage(self, make_ring, provider):
        """llmring 1.4.0 yields no usage for OpenAI's real stream format (usage in choices=[])."""
        ring = make_ring()
        chunks = [chunk async for chunk in ring.chat_stream(_request("openai:gpt-4o-mini"))]
        assert "".join(chunk.delta for chunk in chunks) == provider.content
        assert all(chunk.usage is None for chunk in chunks)
        body = provider.requests[-1][1]
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}

    async def test_anthropic_stream_reports_usage(self, make_ring, provider):
        """An Anthropic stream's message_delta carries the usage llmring reports."""
        ring = make_ring()
        chunks = [chunk async for chunk in ring.chat_stream(_request("anthropic:claude-haiku-4-5-20251001"))]
        usages = [chunk.usage for chunk in chunks if chunk.usage]
        assert len(usages) == 1
        assert usages[0]["prompt_tokens"] == 14
        assert usages[0]["completion_tokens"] == 286
        assert "".join(chunk.delta for chunk in chunks) == provider.content

    async def test_cached_tokens_use_each_providers_shape(self, make_ring, provider):
        """Cached tokens show as OpenAI prompt_tokens_details, Anthropic cache_read_input_tokens."""
        provider.cached_input_tokens = 10
        ring = make_ring()
        openai_response = await ring.chat(_request("openai:gpt-4o-mini"))
        assert openai_response.usage["prompt_tokens"] == 14
        assert openai_response.usage["prompt_tokens_details"]["cached_tokens"] == 10
        anthropic_response = await ring.chat(_request("anthropic:claude-haiku-4-5-20251001"))
        assert anthropic_response.usage["prompt_tokens"] == 4
        assert anthropic_response.usage["cache_read_input_tokens"] == 10

    async def test_fail_next_fails_exactly_one_call(self, make_ring, provider):
        """fail_next(500) fails one call with one request (no SDK retry), the next call succeeds."""
        ring = make_ring()
        provider.fail_next(500)
        with pytest.raises(Exception, match="500"):
            await ring.chat(_request("openai:gpt-4o-mini"))
        assert len(provider.requests) == 1
        response = await ring.chat(_request("openai:gpt-4o-mini"))
        assert response.usage["completion_tokens"] == 286
        assert len(provider.requests) == 2

    async def test_stream_error_cuts_the_stream(self, make_ring, provider):
        """stream_error_after(2) breaks the next stream after two content chunks."""
        ring = make_ring()
        provider.stream_error_after(2)
        received = []
        with pytest.raises(Exception):  # noqa: B017 - llmring wraps the transport error
            async for chunk in ring.chat_stream(_request("anthropic:claude-haiku-4-5-20251001")):
                received.append(chunk)
        assert len([chunk for chunk in received if chunk.delta]) == 2

    def test_fake_provider_stops_twice_and_restarts(self):
        """stop() is idempotent and a stopped provider refuses connections."""
        fake = FakeProvider().start()
        url = fake.url
        assert httpx.get(url + "/health").status_code == 200
        fake.stop()
        fake.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2.0)


@pytest.mark.server
class TestRealServer:
    """The real llmring-server stores what it is sent, read back straight from PostgreSQL."""

    async def test_log_with_cost_lands_in_rows(self, server: RealServer):
        """POST /api/v1/log with a cost stores a row with latency_ms, metadata and id_at_origin."""
        key = server.new_api_key()
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as client:
            answer = await client.post("/api/v1/log", json=_log_body())
        assert answer.status_code == 200, answer.text
        assert answer.json()["cost"] == pytest.approx(EXPECTED_COST_GPT_4O_MINI)
        rows = await server.rows(key)
        assert len(rows) == 1
        row = rows[0]
        assert row["latency_ms"] == 123
        assert row["cost"] == pytest.approx(EXPECTED_COST_GPT_4O_MINI, abs=1e-12)
        assert row["metadata"] == {"case": "selfcheck"}
        assert (row["model"], row["provider"], row["origin"]) == (
            "gpt-4o-mini",
            "openai",
            "selfcheck",
        )
        assert (row["input_tokens"], row["output_tokens"], row["id_at_origin"]) == (
            14,
            286,
            "call-1",
        )
        assert await server.count(server.new_api_key()) == 0

    async def test_restart_keeps_rows_and_port(self, server: RealServer):
        """stop() makes the URL refuse; start() serves again on the same port with the same rows."""
        key = server.new_api_key()
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as client:
            assert (await client.post("/api/v1/log", json=_log_body())).status_code == 200
        server.stop()
        assert not server.is_running
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post("/api/v1/log", json=_log_body())
        server.start()
        assert server.start_seconds is not None
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as client:
            assert (await client.post("/api/v1/log", json=_log_body())).status_code == 200
        assert await server.count(key) == 2

    async def test_strict_mode_checks_keys(self, strict_server: RealServer):
        """Strict mode answers 401 to an unknown key and 200 to a key in llmring_api.api_keys."""
        good, wrong = strict_server.new_api_key(), strict_server.new_api_key()
        await strict_server.add_key(good)
        async with httpx.AsyncClient(base_url=strict_server.url) as client:
            refused = await client.post("/api/v1/log", json=_log_body(), headers={"X-API-Key": wrong})
            accepted = await client.post("/api/v1/log", json=_log_body(), headers={"X-API-Key": good})
        assert refused.status_code == 401
        assert accepted.status_code == 200, accepted.text
        assert await strict_server.count(good) == 1

    async def test_builtin_llmring_logging_reaches_the_server(self, make_ring, server: RealServer):
        """A ring with server_url logs by itself: one row for one chat, cost included."""
        key = server.new_api_key()
        ring = make_ring(server_url=server.url, api_key=key)
        await ring.chat(_request("openai:gpt-4o-mini"))
        rows = await server.rows(key)
        assert len(rows) == 1
        assert rows[0]["cost"] == pytest.approx(EXPECTED_COST_GPT_4O_MINI, abs=1e-12)


@pytest.mark.server
class TestFaultProxy:
    """The fault proxy in front of the real server injects faults the client can see."""

    async def test_drop_reply_stores_row_but_client_errors(self, fault_proxy: FaultProxy, server):
        """drop_reply: the client gets a transport error although the server inserted the row."""
        key = server.new_api_key()
        fault_proxy.drop_reply(count=1)
        async with httpx.AsyncClient(base_url=fault_proxy.url, headers={"X-API-Key": key}) as client:
            with pytest.raises(httpx.TransportError):
                await client.post("/api/v1/log", json=_log_body())
            assert await server.count(key) == 1
            answer = await client.post("/api/v1/log", json=_log_body(id_at_origin="call-2"))
        assert answer.status_code == 200
        assert await server.count(key) == 2
        assert fault_proxy.seen == {"drop_reply": 1, "pass": 1}

    async def test_status_then_pass_on_one_keepalive_connection(self, fault_proxy: FaultProxy, server):
        """status(429, Retry-After) answers twice itself, then requests pass on the same client."""
        key = server.new_api_key()
        fault_proxy.status(429, {"Retry-After": "1"}, count=2)
        async with httpx.AsyncClient(base_url=fault_proxy.url, headers={"X-API-Key": key}) as client:
            answers = [await client.post("/api/v1/log", json=_log_body()) for _ in range(4)]
        assert [a.status_code for a in answers] == [429, 429, 200, 200]
        assert answers[0].headers["retry-after"] == "1"
        assert await server.count(key) == 2
        assert fault_proxy.seen == {"status": 2, "pass": 2}

    async def test_delay_forwards_then_answers_late(self, fault_proxy: FaultProxy, server):
        """delay(0.5): the row exists before the answer, which arrives after the delay."""
        key = server.new_api_key()
        fault_proxy.delay(0.5)
        async with httpx.AsyncClient(base_url=fault_proxy.url, headers={"X-API-Key": key}) as client:
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/api/v1/log", json=_log_body(), timeout=0.2)
            assert await server.count(key) == 1
            answer = await client.post("/api/v1/log", json=_log_body())
            elapsed = time.monotonic() - started
        assert answer.status_code == 200
        assert elapsed >= 0.5

    async def test_hang_never_forwards(self, fault_proxy: FaultProxy, server):
        """hang(): the client times out and the server never sees the request."""
        key = server.new_api_key()
        fault_proxy.hang(count=1)
        async with httpx.AsyncClient(base_url=fault_proxy.url, headers={"X-API-Key": key}) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.post("/api/v1/log", json=_log_body(), timeout=0.3)
            assert (await c.post("/api/v1/log", json=_log_body())).status_code == 200
        assert await server.count(key) == 1
        assert fault_proxy.seen == {"hang": 1, "pass": 1}


class TestFaultTools:
    """The hung server and the refusing port fail the way they claim to."""

    async def test_hung_server_times_out(self, hung_server: HungServer):
        """A request to the hung server times out after the client's timeout."""
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            async with httpx.AsyncClient() as client:
                await client.get(hung_server.url + "/health", timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 3.0
        assert hung_server.accepted == 1

    async def test_refusing_port_refuses_fast(self, refusing_port: RefusingPort):
        """A connection to the refusing port fails at once."""
        started = time.monotonic()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(refusing_port.url, timeout=5.0)
        assert time.monotonic() - started < 1.0

    def test_tools_stop_by_themselves(self):
        """A tool whose lifetime ends stops on its own."""
        hung = HungServer(max_lifetime_s=0.2).start()
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(hung.url, timeout=1.0)
        hung.stop()

    async def test_isolated_home(self, isolated_env, tmp_path):
        """HOME and llmring's registry cache directory live under the test's tmp dir."""
        from llmring.registry import RegistryClient

        assert str(RegistryClient.CACHE_DIR).startswith(str(tmp_path))
        await asyncio.sleep(0)
