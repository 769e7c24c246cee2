"""Extraction of usage facts from llmring responses, streams and raw provider SDK responses."""

from __future__ import annotations

import anthropic.types
import pytest
from google.genai import types as genai_types
from llmring.schemas import LLMRequest, LLMResponse, Message, StreamChunk
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from llmring_usage.extract import (
    StreamTally,
    estimate_tokens,
    facts_from_llm_response,
    facts_from_provider_response,
    is_llm_response,
    normalise_usage,
    request_chars,
    split_model,
)


def _chat_completion_body(*, cached: int = 0) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 14,
            "completion_tokens": 286,
            "total_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        },
    }


def _responses_body(*, cached: int = 0) -> dict:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": "o1-mini",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hello", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 14,
            "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": 286,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 300,
        },
    }


def _anthropic_body(*, cache_read: int = 0, cache_write: int = 0) -> dict:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 14,
            "output_tokens": 286,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        },
    }


def _gemini_response(*, cached: int | None = None, thoughts: int | None = None):
    return genai_types.GenerateContentResponse(
        model_version="gemini-2.0-flash",
        candidates=[
            genai_types.Candidate(
                content=genai_types.Content(role="model", parts=[genai_types.Part(text="hello")]),
                finish_reason=genai_types.FinishReason.MAX_TOKENS,
            )
        ],
        usage_metadata=genai_types.GenerateContentResponseUsageMetadata(
            prompt_token_count=14,
            candidates_token_count=286,
            cached_content_token_count=cached,
            thoughts_token_count=thoughts,
            total_token_count=300,
        ),
    )


class TestSplitModel:
    """A "provider:model" reference splits at the first colon."""

    def test_splits_provider_and_model(self):
        """ "openai:gpt-4o-mini" gives provider openai and model gpt-4o-mini."""
        assert split_model("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")

    def test_keeps_colons_inside_the_model_name(self):
        """Only the first colon separates: Ollama tags like "llama3:8b" stay in the model."""
        assert split_model("ollama:llama3:8b") == ("ollama", "llama3:8b")

    def test_bare_name_gets_the_default_provider(self):
        """An alias or bare model name keeps the given default provider."""
        assert split_model("fast", default_provider="openai") == ("openai", "fast")
        assert split_model("fast") == ("unknown", "fast")


class TestLLMRingUsage:
    """llmring's usage dict is normalised, cached tokens read wherever providers put them."""

    def test_reads_prompt_and_completion_tokens(self):
        """prompt_tokens / completion_tokens become input and output tokens."""
        usage = normalise_usage({"prompt_tokens": 14, "completion_tokens": 286})
        assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (14, 286, 0)
        assert usage.source == "provider"

    def test_reads_flat_cached_tokens(self):
        """A flat `cached_tokens` key (llmring's own name) is the cached input count."""
        usage = normalise_usage({"prompt_tokens": 14, "completion_tokens": 2, "cached_tokens": 6})
        assert usage.cached_input_tokens == 6
        assert usage.input_tokens == 14

    def test_reads_openai_prompt_tokens_details(self):
        """OpenAI's prompt_tokens_details.cached_tokens is read (llmring's own logging misses it)."""
        usage = normalise_usage(
            {"prompt_tokens": 14, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 10}},
            provider="openai",
        )
        assert usage.cached_input_tokens == 10
        assert usage.input_tokens == 14  # OpenAI counts cached tokens inside prompt_tokens

    def test_anthropic_cache_reads_are_added_back_to_input(self):
        """Anthropic's prompt_tokens exclude cache reads and writes: input = 4 + 10 read + 3 written."""
        usage = normalise_usage(
            {
                "prompt_tokens": 4,
                "completion_tokens": 286,
                "cache_read_input_tokens": 10,
                "cache_creation_input_tokens": 3,
            },
            provider="anthropic",
        )
        assert usage.input_tokens == 17
        assert usage.cached_input_tokens == 10
        assert usage.output_tokens == 286

    def test_missing_or_garbage_counts_become_zero(self):
        """None, missing and non-numeric counts read as 0, never negative."""
        usage = normalise_usage({"prompt_tokens": None, "completion_tokens": "n/a"})
        assert (usage.input_tokens, usage.output_tokens) == (0, 0)
        assert normalise_usage({"prompt_tokens": -5}).input_tokens == 0

    def test_llm_response_gives_provider_model_finish_and_cost(self):
        """An LLMResponse's "provider:model", finish_reason and usage["cost"] become the facts."""
        response = LLMResponse(
            content="hello",
            model="openai:gpt-4o-mini",
            usage={"prompt_tokens": 14, "completion_tokens": 286, "cost": 0.0001737},
            finish_reason="stop",
        )
        facts = facts_from_llm_response(response)
        assert (facts.provider, facts.model) == ("openai", "gpt-4o-mini")
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (14, 286)
        assert facts.finish_reason == "stop"
        assert facts.reported_cost == pytest.approx(0.0001737)

    def test_llm_response_from_anthropic_counts_cache_reads(self):
        """An Anthropic LLMResponse with cache_read_input_tokens reports them as cached input."""
        response = LLMResponse(
            content="hello",
            model="anthropic:claude-haiku-4-5-20251001",
            usage={"prompt_tokens": 4, "completion_tokens": 286, "cache_read_input_tokens": 10},
        )
        facts = facts_from_llm_response(response)
        assert facts.provider == "anthropic"
        assert (facts.usage.input_tokens, facts.usage.cached_input_tokens) == (14, 10)
        assert facts.reported_cost is None

    def test_llmring_cost_is_dropped_when_cache_reads_were_mispriced(self):
        """llmring misprices cache reads (OpenAI's nested count, Anthropic's prompt): cost is redone."""
        openai_response = LLMResponse(
            content="x",
            model="openai:gpt-4o-mini",
            usage={
                "prompt_tokens": 14,
                "completion_tokens": 286,
                "prompt_tokens_details": {"cached_tokens": 10},
                "cost": 0.0001737,  # what llmring 1.4.0 computes: all 14 at the full rate
            },
        )
        anthropic_response = LLMResponse(
            content="x",
            model="anthropic:claude-haiku-4-5-20251001",
            usage={"prompt_tokens": 4, "completion_tokens": 286, "cache_read_input_tokens": 10, "cost": 1e-3},
        )
        assert facts_from_llm_response(openai_response).reported_cost is None
        assert facts_from_llm_response(anthropic_response).reported_cost is None

    def test_anthropic_cache_writes_are_kept_for_pricing(self):
        """Cache writes in an Anthropic LLMResponse are counted as input and noted for the pricer."""
        response = LLMResponse(
            content="x",
            model="anthropic:claude-haiku-4-5-20251001",
            usage={"prompt_tokens": 10, "completion_tokens": 286, "cache_creation_input_tokens": 4},
        )
        facts = facts_from_llm_response(response)
        assert facts.usage.input_tokens == 14
        assert facts.extra == {"cache_creation_input_tokens": 4}

    def test_llm_response_with_bare_model_uses_default_provider(self):
        """A response whose model has no provider prefix takes the provider given by the caller."""
        response = LLMResponse(content="x", model="gpt-4o-mini", usage={"prompt_tokens": 1})
        assert facts_from_llm_response(response, default_provider="openai").provider == "openai"

    def test_llm_response_without_usage_gives_zero_tokens(self):
        """usage=None is read as zero tokens, not an error."""
        facts = facts_from_llm_response(LLMResponse(content="x", model="openai:gpt-4o-mini", usage=None))
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (0, 0)

    def test_is_llm_response_tells_llmring_responses_from_sdk_objects(self):
        """An LLMResponse is recognised; a raw ChatCompletion and a dict are not."""
        assert is_llm_response(LLMResponse(content="x", model="openai:m", usage={}))
        assert not is_llm_response(ChatCompletion.model_validate(_chat_completion_body()))
        assert not is_llm_response({"content": "x", "model": "m", "usage": {}})


class TestOpenAIResponses:
    """Raw OpenAI SDK objects (and their dict forms) are read as provider openai."""

    def test_chat_completion_object(self):
        """A real openai ChatCompletion gives its model, 14/286 tokens and finish reason."""
        facts = facts_from_provider_response(ChatCompletion.model_validate(_chat_completion_body()))
        assert facts is not None
        assert (facts.provider, facts.model) == ("openai", "gpt-4o-mini-2024-07-18")
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (14, 286)
        assert facts.finish_reason == "length"

    def test_chat_completion_cached_tokens(self):
        """prompt_tokens_details.cached_tokens of a ChatCompletion is the cached input."""
        facts = facts_from_provider_response(ChatCompletion.model_validate(_chat_completion_body(cached=8)))
        assert facts is not None
        assert facts.usage.cached_input_tokens == 8
        assert facts.usage.input_tokens == 14

    def test_chat_completion_dict(self):
        """The dict form of a chat completion (object "chat.completion") reads the same."""
        facts = facts_from_provider_response(_chat_completion_body(cached=3))
        assert facts is not None
        assert facts.provider == "openai"
        assert (facts.usage.input_tokens, facts.usage.output_tokens, facts.usage.cached_input_tokens) == (
            14,
            286,
            3,
        )

    def test_responses_api_object(self):
        """A real openai Responses `Response` reads input/output tokens and input_tokens_details."""
        facts = facts_from_provider_response(Response.model_validate(_responses_body(cached=5)))
        assert facts is not None
        assert (facts.provider, facts.model) == ("openai", "o1-mini")
        assert (facts.usage.input_tokens, facts.usage.output_tokens, facts.usage.cached_input_tokens) == (
            14,
            286,
            5,
        )
        assert facts.finish_reason == "completed"

    def test_responses_api_dict(self):
        """The dict form of a Responses API answer (object "response") is read as OpenAI."""
        facts = facts_from_provider_response(_responses_body())
        assert facts is not None
        assert facts.provider == "openai"
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (14, 286)


class TestAnthropicResponses:
    """Raw Anthropic Message objects count cache reads and writes into input tokens."""

    def test_message_object(self):
        """A real anthropic.types.Message gives its model, tokens and stop reason."""
        message = anthropic.types.Message.model_validate(_anthropic_body())
        facts = facts_from_provider_response(message)
        assert facts is not None
        assert (facts.provider, facts.model) == ("anthropic", "claude-haiku-4-5-20251001")
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (14, 286)
        assert facts.finish_reason == "end_turn"

    def test_message_cache_read_and_write(self):
        """input = 14 + 10 read + 2 written; cached = the 10 read; writes noted in extra."""
        message = anthropic.types.Message.model_validate(_anthropic_body(cache_read=10, cache_write=2))
        facts = facts_from_provider_response(message)
        assert facts is not None
        assert facts.usage.input_tokens == 26
        assert facts.usage.cached_input_tokens == 10
        assert facts.extra == {"cache_creation_input_tokens": 2}

    def test_message_dict(self):
        """The dict form (type "message") is read as Anthropic, not as OpenAI."""
        facts = facts_from_provider_response(_anthropic_body(cache_read=4))
        assert facts is not None
        assert facts.provider == "anthropic"
        assert (facts.usage.input_tokens, facts.usage.cached_input_tokens) == (18, 4)


class TestGoogleResponses:
    """Google genai responses read usage_metadata; thinking tokens count as output."""

    def test_generate_content_response_object(self):
        """A real GenerateContentResponse gives model_version, 14/286 tokens and the finish name."""
        facts = facts_from_provider_response(_gemini_response())
        assert facts is not None
        assert (facts.provider, facts.model) == ("google", "gemini-2.0-flash")
        assert (facts.usage.input_tokens, facts.usage.output_tokens, facts.usage.cached_input_tokens) == (
            14,
            286,
            0,
        )
        assert facts.finish_reason == "MAX_TOKENS"

    def test_cached_and_thinking_tokens(self):
        """cached_content_token_count is cached input; thoughts_token_count adds to output (286+10)."""
        facts = facts_from_provider_response(_gemini_response(cached=6, thoughts=10))
        assert facts is not None
        assert facts.usage.cached_input_tokens == 6
        assert facts.usage.output_tokens == 296

    def test_dict_form(self):
        """The JSON dict of a GenerateContentResponse reads the same as the object."""
        body = _gemini_response(cached=6).model_dump(mode="json", exclude_none=True)
        facts = facts_from_provider_response(body)
        assert facts is not None
        assert (facts.provider, facts.model) == ("google", "gemini-2.0-flash")
        assert (facts.usage.input_tokens, facts.usage.output_tokens, facts.usage.cached_input_tokens) == (
            14,
            286,
            6,
        )
        assert facts.finish_reason == "MAX_TOKENS"


class TestNotAResponse:
    """Objects without usage are not mistaken for provider responses."""

    @pytest.mark.parametrize("value", ["text", 42, None, {"answer": "x"}, ["a"], object()])
    def test_returns_none(self, value):
        """Strings, numbers, plain dicts and lists carry no usage: None."""
        assert facts_from_provider_response(value) is None


class TestEstimates:
    """Token estimates for calls whose provider reported no usage."""

    def test_estimate_is_ceiling_of_a_quarter_of_the_characters(self):
        """About 4 characters per token, rounded up; no text is zero tokens."""
        assert estimate_tokens(0) == 0
        assert estimate_tokens(1) == 1
        assert estimate_tokens(8) == 2
        assert estimate_tokens(9) == 3

    def test_request_chars_counts_every_message(self):
        """Characters of all string contents and text parts of the request's messages are summed."""
        request = LLMRequest(
            model="openai:gpt-4o-mini",
            messages=[
                Message(role="system", content="abcd"),
                Message(role="user", content=[{"type": "text", "text": "efghij"}]),
            ],
        )
        assert request_chars(request) == 10


class TestStreamTally:
    """A stream's chunks are tallied into one set of facts when it ends."""

    def test_usage_reported_by_the_provider_wins(self):
        """A chunk carrying usage gives provider counts and usage_source "provider"."""
        tally = StreamTally()
        tally.add(StreamChunk(delta="Hello ", model="anthropic:claude-haiku-4-5-20251001"))
        tally.add(
            StreamChunk(
                delta="world",
                finish_reason="end_turn",
                usage={"prompt_tokens": 14, "completion_tokens": 286},
            )
        )
        facts = tally.facts(model_ref="anthropic:claude-haiku-4-5-20251001")
        assert (facts.provider, facts.model) == ("anthropic", "claude-haiku-4-5-20251001")
        assert (facts.usage.input_tokens, facts.usage.output_tokens) == (14, 286)
        assert facts.usage.source == "provider"
        assert facts.finish_reason == "end_turn"
        assert tally.chunks == 2

    def test_no_usage_gives_estimated_tokens(self):
        """Without usage: input from the request text, output from the streamed text, "estimated"."""
        request = LLMRequest(model="openai:gpt-4o-mini", messages=[Message(role="user", content="x" * 40)])
        tally = StreamTally()
        for piece in ("a" * 10, "b" * 10, "c" * 3):
            tally.add(StreamChunk(delta=piece))
        facts = tally.facts(model_ref="openai:gpt-4o-mini", request=request)
        assert facts.usage.source == "estimated"
        assert facts.usage.input_tokens == 10  # 40 chars / 4
        assert facts.usage.output_tokens == 6  # ceil(23 / 4)
        assert (facts.provider, facts.model) == ("openai", "gpt-4o-mini")

    def test_time_to_first_token_is_set_by_the_first_non_empty_delta(self):
        """An empty first chunk does not count as the first token; a text chunk does."""
        tally = StreamTally()
        tally.add(StreamChunk(delta=""))
        assert tally.time_to_first_token_ms is None
        tally.add(StreamChunk(delta="hi"))
        assert tally.time_to_first_token_ms is not None
        assert tally.time_to_first_token_ms >= 0
