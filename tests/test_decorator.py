"""@log_usage: one record per call of a user's function returning an llmring or SDK response."""

from __future__ import annotations

import inspect
import logging

import anthropic.types
import pytest
from _support.records import journal_records, request
from google.genai import types as genai_types
from llmring.schemas import LLMResponse, StreamChunk
from openai.types.chat import ChatCompletion

from llmring_usage import log_usage, with_usage_logging
from llmring_usage.delivery import logger as logger_module

GPT_4O_MINI_COST = 14 * 0.15 / 1e6 + 286 * 0.60 / 1e6
HAIKU_COST = 14 * 1.00 / 1e6 + 286 * 5.00 / 1e6


def _chat_completion(cached: int = 0) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": 14,
                "completion_tokens": 286,
                "total_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    )


def _anthropic_message() -> anthropic.types.Message:
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 14, "output_tokens": 286},
        }
    )


def _llm_response() -> LLMResponse:
    return LLMResponse(
        content="hi",
        model="openai:gpt-4o-mini",
        usage={"prompt_tokens": 14, "completion_tokens": 286},
        finish_reason="stop",
    )


class TestShapes:
    """Bare or with options, sync or async, the decorated function keeps its nature."""

    def test_bare_decorator_keeps_name_doc_and_coroutine_nature(self):
        """@log_usage on an async function: still a coroutine function with its name and doc."""

        @log_usage
        async def ask(prompt):
            """Ask something."""
            return _llm_response()

        assert inspect.iscoroutinefunction(ask)
        assert ask.__name__ == "ask"
        assert ask.__doc__ == "Ask something."

    def test_sync_function_stays_sync(self):
        """A decorated sync function is not turned into a coroutine function."""

        @log_usage(origin="x")
        def ask(prompt):
            return _chat_completion()

        assert not inspect.iscoroutinefunction(ask)


class TestRecords:
    """What each kind of return value records."""

    async def test_async_function_returning_llm_response(self):
        """An async function returning an llmring LLMResponse gives one record; result unchanged."""
        expected = _llm_response()

        @log_usage(origin="app")
        async def ask(prompt):
            return expected

        assert await ask("hi") is expected
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.model, record.origin) == ("openai", "gpt-4o-mini", "app")
        assert (record.input_tokens, record.output_tokens) == (14, 286)
        assert record.metadata["finish_reason"] == "stop"

    def test_sync_function_returning_openai_chat_completion(self, registry_url):
        """A sync function returning a raw ChatCompletion is priced from the registry."""
        completion = _chat_completion(cached=4)

        @log_usage(registry_url=registry_url)
        def ask(prompt):
            return completion

        assert ask("hi") is completion
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.model) == ("openai", "gpt-4o-mini")
        assert (record.input_tokens, record.output_tokens, record.cached_input_tokens) == (14, 286, 4)
        expected = (10 * 0.15 + 4 * 0.075 + 286 * 0.60) / 1e6  # 10 uncached, 4 cached at $0.075
        assert record.cost == pytest.approx(expected, abs=1e-12)
        assert record.latency_ms is not None

    async def test_async_function_returning_anthropic_message(self, registry_url):
        """A raw anthropic Message is detected as Anthropic and priced at $1 / $5 per million."""

        @log_usage(registry_url=registry_url)
        async def ask(prompt):
            return _anthropic_message()

        await ask("hi")
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.model) == ("anthropic", "claude-haiku-4-5-20251001")
        assert record.cost == pytest.approx(HAIKU_COST, abs=1e-12)
        assert record.metadata["finish_reason"] == "end_turn"

    async def test_google_response_without_registry_price_has_no_cost(self, registry_url):
        """A Gemini response is recorded with its tokens; the registry has no price, so no cost."""

        @log_usage(registry_url=registry_url)
        async def ask(prompt):
            return genai_types.GenerateContentResponse(
                model_version="gemini-2.0-flash",
                usage_metadata=genai_types.GenerateContentResponseUsageMetadata(
                    prompt_token_count=14, candidates_token_count=286
                ),
            )

        await ask("hi")
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.model, record.input_tokens, record.output_tokens) == (
            "google",
            "gemini-2.0-flash",
            14,
            286,
        )
        assert record.cost is None

    async def test_provider_and_model_override_detection(self, registry_url):
        """provider= and model= replace what was detected (an Azure deployment name, say)."""

        @log_usage(provider="azure", model="my-deployment", registry_url=registry_url)
        async def ask(prompt):
            return {"object": "chat.completion", "model": "gpt-4o-mini", "usage": {"prompt_tokens": 3}}

        await ask("hi")
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.model, record.input_tokens) == ("azure", "my-deployment", 3)
        assert record.metadata["model_alias"] == "azure:my-deployment"

    async def test_methods_can_be_decorated(self, registry_url):
        """A decorated method receives self and is logged per call."""

        class Client:
            calls = 0

            @log_usage(registry_url=registry_url)
            async def ask(self, prompt):
                self.calls += 1
                return _chat_completion()

        client = Client()
        await client.ask("a")
        await client.ask("b")
        assert client.calls == 2
        assert len(journal_records(_logger_of_home())) == 2

    async def test_result_without_usage_is_returned_and_not_logged(self, caplog):
        """A string result is returned as is, with one warning per result type and no record."""
        caplog.set_level(logging.WARNING, logger="llmring_usage")

        class Plain:
            pass

        @log_usage
        async def ask(prompt):
            return Plain()

        results = [await ask("a"), await ask("b")]
        assert all(isinstance(r, Plain) for r in results)
        warned = [r for r in caplog.records if r.name == "llmring_usage" and "Plain" in r.getMessage()]
        assert len(warned) == 1
        assert journal_records(_logger_of_home()) == []

    async def test_exception_propagates_and_nothing_is_logged(self):
        """The function's own exception reaches the caller unchanged; no record."""

        class Boom(Exception):
            pass

        @log_usage
        async def ask(prompt):
            raise Boom("provider down")

        with pytest.raises(Boom, match="provider down"):
            await ask("hi")
        assert journal_records(_logger_of_home()) == []

    async def test_async_generator_of_stream_chunks_is_logged_at_its_end(self):
        """An async generator function yields its chunks unchanged and logs once at the end."""

        @log_usage
        async def stream(prompt):
            yield StreamChunk(delta="Hello", model="anthropic:claude-haiku-4-5-20251001")
            yield StreamChunk(delta=" world", usage={"prompt_tokens": 14, "completion_tokens": 286})

        assert [c.delta async for c in stream("hi")] == ["Hello", " world"]
        (record,) = journal_records(_logger_of_home())
        assert (record.provider, record.output_tokens) == ("anthropic", 286)
        assert record.metadata["stream_end"] == "completed"

    async def test_decorated_function_using_a_wrapped_ring_logs_once(self, make_ring):
        """A decorated function that calls a wrapped ring gives one record, not two."""
        ring = with_usage_logging(make_ring())

        @log_usage
        async def ask(prompt):
            return await ring.chat(request("openai:gpt-4o-mini", prompt))

        await ask("hi")
        assert len(journal_records(ring.usage_logger)) == 1


def _logger_of_home():
    """The shared logger of the default (journal-only) configuration of this test's HOME."""
    from llmring_usage.config import resolve_config

    return logger_module.shared_logger(resolve_config())


class TestSyncBackground:
    """A sync function in background mode does not wait for its record to be priced."""

    def test_sync_call_hands_over_and_flush_finds_the_priced_record(self, registry_url, tmp_path):
        """Background mode: the record is priced on the worker; a flush then finds it journaled."""
        completion = _chat_completion()

        @log_usage(registry_url=registry_url, delivery="background", journal_path=tmp_path / "bg.db")
        def ask(prompt):
            return completion

        from llmring_usage.config import resolve_config

        assert ask("hi") is completion
        config = resolve_config(delivery="background", journal_path=tmp_path / "bg.db")
        usage_logger = logger_module.shared_logger(config)
        (record,) = journal_records(usage_logger)
        assert (record.input_tokens, record.output_tokens) == (14, 286)
        assert record.cost == pytest.approx((14 * 0.15 + 286 * 0.60) / 1e6, abs=1e-12)
