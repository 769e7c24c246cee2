"""Pure extraction of usage facts from llmring responses, llmring streams and provider SDK responses."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

UsageSource = Literal["provider", "estimated"]

_CHARS_PER_TOKEN = 4
"""Rough English average, used only when a provider reported no usage at all."""


@dataclass(frozen=True)
class Usage:
    """Token counts of one call."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    source: UsageSource = "provider"


@dataclass(frozen=True)
class CallFacts:
    """What one finished call tells about itself, before pricing and timing."""

    provider: str
    model: str
    usage: Usage
    finish_reason: str | None = None
    reported_cost: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def split_model(model_ref: str, *, default_provider: str = "unknown") -> tuple[str, str]:
    """Split "provider:model" into its parts; a bare name keeps `default_provider`."""
    if ":" in model_ref:
        provider, _, name = model_ref.partition(":")
        return provider, name
    return default_provider, model_ref


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def estimate_tokens(text_chars: int) -> int:
    """A token estimate for `text_chars` characters (at least 1 for any non-empty text)."""
    return math.ceil(text_chars / _CHARS_PER_TOKEN) if text_chars > 0 else 0


def normalise_usage(usage: Any, *, provider: str = "") -> Usage:
    """Token counts from a usage dict or SDK usage object, whatever names its provider uses.

    Reads prompt/input and completion/output counts, and cached tokens wherever providers put
    them (flat `cached_tokens`, Anthropic's `cache_read_input_tokens`, OpenAI's
    `prompt_tokens_details` / `input_tokens_details`). Input tokens count every prompt token,
    cached ones included (the server bills input - cached): Anthropic reports cache reads and
    writes apart, so they are added back.
    """
    # One type check per call, not per field: this runs on the caller's path for every call.
    get = usage.get if isinstance(usage, dict) else functools.partial(getattr, usage)
    cached = (
        get("cached_tokens", None)
        or get("cache_read_input_tokens", None)
        or _get(get("prompt_tokens_details", None), "cached_tokens")
        or _get(get("input_tokens_details", None), "cached_tokens")
    )
    input_tokens = get("prompt_tokens", None)
    if input_tokens is None:
        input_tokens = get("input_tokens", None)
    output_tokens = get("completion_tokens", None)
    if output_tokens is None:
        output_tokens = get("output_tokens", None)
    total_input = _int(input_tokens)
    if provider == "anthropic":
        total_input += _int(get("cache_read_input_tokens", None)) + cache_writes(usage, provider=provider)
    return Usage(total_input, _int(output_tokens), _int(cached))


def cache_writes(usage: Any, *, provider: str) -> int:
    """Anthropic's cache-write tokens (billed at their own rate), 0 for other providers."""
    return _int(_get(usage, "cache_creation_input_tokens")) if provider == "anthropic" else 0


def _llmring_cost(usage: dict[str, Any], normalised: Usage) -> Any:
    """llmring's `usage["cost"]`, unless the call read cached tokens.

    llmring 1.4.0 misprices cache reads: it misses OpenAI's nested
    `prompt_tokens_details.cached_tokens` (billed at the full input rate), and subtracts
    Anthropic's `cache_read_input_tokens` from a prompt count that already excludes them (the
    uncached prompt tokens go unbilled). Such a call is priced again from the normalised counts.
    """
    if normalised.cached_input_tokens:
        return None
    return usage.get("cost")


def request_chars(request: Any) -> int:
    """Characters of text in an llmring request's messages (for estimates only)."""
    total = 0
    for message in _get(request, "messages", None) or []:
        content = _get(message, "content", "")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = _get(part, "text", "")
                total += len(text) if isinstance(text, str) else 0
    return total


def facts_from_llm_response(response: Any, *, default_provider: str = "unknown") -> CallFacts:
    """Facts from an llmring LLMResponse (model "provider:model", usage dict, maybe a cost)."""
    provider, model = split_model(str(_get(response, "model", "") or ""), default_provider=default_provider)
    usage_dict = _get(response, "usage", None) or {}
    if not isinstance(usage_dict, dict):
        usage_dict = {}
    usage = normalise_usage(usage_dict, provider=provider)
    reported = _llmring_cost(usage_dict, usage)
    cache_write = cache_writes(usage_dict, provider=provider)
    return CallFacts(
        provider=provider,
        model=model,
        usage=usage,
        finish_reason=_get(response, "finish_reason", None),
        reported_cost=float(reported) if isinstance(reported, (int, float)) else None,
        extra={"cache_creation_input_tokens": cache_write} if cache_write else {},
    )


def is_llm_response(obj: Any) -> bool:
    """True for an llmring LLMResponse (or anything shaped like one)."""
    return (
        not isinstance(obj, dict)
        and hasattr(obj, "content")
        and hasattr(obj, "model")
        and hasattr(obj, "usage")
        and (isinstance(_get(obj, "usage"), dict) or _get(obj, "usage") is None)
    )


def facts_from_provider_response(obj: Any) -> CallFacts | None:
    """Facts from a raw OpenAI, Anthropic or Google SDK response (object or dict), else None."""
    module = type(obj).__module__.split(".", 1)[0]
    usage = _get(obj, "usage")
    kind = _get(obj, "object") or _get(obj, "type")
    if _get(obj, "usage_metadata") is not None or module == "google":
        return _google(obj)
    if module == "anthropic" or kind == "message" or _get(usage, "cache_read_input_tokens") is not None:
        if usage is not None and _get(usage, "input_tokens") is not None:
            return _anthropic(obj, usage)
    if usage is not None and (
        module == "openai"
        or kind in ("chat.completion", "response", "text_completion")
        or _get(usage, "prompt_tokens") is not None
    ):
        return _openai(obj, usage)
    return None


def _openai(obj: Any, usage: Any) -> CallFacts:
    choices = _get(obj, "choices") or []
    return CallFacts(
        provider="openai",
        model=str(_get(obj, "model", "") or "unknown"),
        usage=normalise_usage(usage, provider="openai"),
        finish_reason=_get(choices[0], "finish_reason") if choices else _get(obj, "status"),
    )


def _anthropic(obj: Any, usage: Any) -> CallFacts:
    cache_write = cache_writes(usage, provider="anthropic")
    return CallFacts(
        provider="anthropic",
        model=str(_get(obj, "model", "") or "unknown"),
        usage=normalise_usage(usage, provider="anthropic"),
        finish_reason=_get(obj, "stop_reason"),
        extra={"cache_creation_input_tokens": cache_write} if cache_write else {},
    )


def _google(obj: Any) -> CallFacts:
    meta = _get(obj, "usage_metadata")
    candidates = _get(obj, "candidates") or []
    finish = _get(candidates[0], "finish_reason") if candidates else None
    finish_name = _get(finish, "name", None) or (str(finish) if finish is not None else None)
    output = _int(_get(meta, "candidates_token_count")) + _int(_get(meta, "thoughts_token_count"))
    return CallFacts(
        provider="google",
        model=str(_get(obj, "model_version", "") or "unknown"),
        usage=Usage(
            _int(_get(meta, "prompt_token_count")),
            output,
            _int(_get(meta, "cached_content_token_count")),
        ),
        finish_reason=finish_name,
    )


class StreamTally:
    """Accumulates what a stream of llmring StreamChunks says about usage, without keeping text."""

    __slots__ = (
        "started_ns",
        "first_token_ns",
        "chars",
        "chunks",
        "usage",
        "model",
        "finish_reason",
    )

    def __init__(self, started_ns: int | None = None) -> None:
        self.started_ns = time.perf_counter_ns() if started_ns is None else started_ns
        self.first_token_ns: int | None = None
        self.chars = 0
        self.chunks = 0
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.finish_reason: str | None = None

    def add(self, chunk: Any) -> None:
        self.chunks += 1
        delta = _get(chunk, "delta", "") or ""
        if delta and self.first_token_ns is None:
            self.first_token_ns = time.perf_counter_ns()
        self.chars += len(delta)
        usage = _get(chunk, "usage")
        if usage:
            self.usage = dict(usage)
        model = _get(chunk, "model")
        if model:
            self.model = model
        finish = _get(chunk, "finish_reason")
        if finish:
            self.finish_reason = finish

    @property
    def time_to_first_token_ms(self) -> float | None:
        if self.first_token_ns is None:
            return None
        return round((self.first_token_ns - self.started_ns) / 1e6, 3)

    def facts(self, *, model_ref: str, request: Any = None) -> CallFacts:
        """Facts of the stream so far; estimated tokens when the provider reported none."""
        provider, model = split_model(model_ref)
        if self.model:
            chunk_provider, chunk_model = split_model(self.model, default_provider=provider)
            provider, model = chunk_provider, chunk_model
        if self.usage:
            usage = normalise_usage(self.usage, provider=provider)
            cost = _llmring_cost(self.usage, usage)
        else:
            usage = Usage(
                estimate_tokens(request_chars(request)),
                estimate_tokens(self.chars),
                0,
                source="estimated",
            )
            cost = None
        return CallFacts(
            provider=provider,
            model=model,
            usage=usage,
            finish_reason=self.finish_reason,
            reported_cost=float(cost) if isinstance(cost, (int, float)) else None,
        )
