"""@log_usage: one usage record for each call of a user's own function that talks to an LLM."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import wrapt

from ._instrument import CallInfo, Instrument, inside_logged_call, warn_no_usage
from ._setup import build_instrument
from .delivery.logger import UsageLogger
from .errors import ConfigurationError
from .extract import (
    CallFacts,
    facts_from_llm_response,
    facts_from_provider_response,
    is_llm_response,
)

logger = logging.getLogger("llmring_usage")

F = TypeVar("F", bound=Callable[..., Any])

_SYNC_PRICING_TIMEOUT_S = 5.0


def facts_from_result(result: Any) -> CallFacts | None:
    """Usage facts from whatever a decorated function returned, or None if it holds none."""
    if is_llm_response(result):
        return facts_from_llm_response(result)
    return facts_from_provider_response(result)


@overload
def log_usage(func: F, /) -> F: ...


@overload
def log_usage(
    func: None = None,
    /,
    *,
    server_url: str | None = ...,
    api_key: str | None = ...,
    origin: str | None = ...,
    metadata: dict[str, Any] | None = ...,
    provider: str | None = ...,
    model: str | None = ...,
    delivery: str | None = ...,
    timeout_s: float | None = ...,
    journal_path: str | Path | None = ...,
    registry_url: str | None = ...,
    usage_logger: UsageLogger | None = ...,
) -> Callable[[F], F]: ...


def log_usage(
    func: Callable[..., Any] | None = None,
    /,
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    origin: str | None = None,
    metadata: dict[str, Any] | None = None,
    provider: str | None = None,
    model: str | None = None,
    delivery: str | None = None,
    timeout_s: float | None = None,
    journal_path: str | Path | None = None,
    registry_url: str | None = None,
    usage_logger: UsageLogger | None = None,
) -> Any:
    """Log one usage record per call of the decorated function (bare or with options).

    The function may be async or sync and may return an llmring LLMResponse, a raw OpenAI,
    Anthropic or Google SDK response, or an llmring stream (an async generator function works
    too). `provider=` and `model=` override what is detected. Options are checked here.
    """
    instrument = build_instrument(
        server_url=server_url,
        api_key=api_key,
        origin=origin,
        metadata=metadata,
        delivery=delivery,
        timeout_s=timeout_s,
        journal_path=journal_path,
        usage_logger=usage_logger,
        registry_url=registry_url,
        provider=provider,
        model=model,
    )

    def decorate(function: Callable[..., Any]) -> Any:
        if not callable(function):
            raise ConfigurationError(f"log_usage decorates a function, not {function!r}")
        if inspect.isasyncgenfunction(function):
            return _stream_wrapper(instrument)(function)
        if inspect.iscoroutinefunction(function):
            return _async_wrapper(instrument)(function)
        return _sync_wrapper(instrument)(function)

    return decorate(func) if func is not None else decorate


def _async_wrapper(instrument: Instrument) -> Any:
    @wrapt.decorator
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return await instrument.intercept_call(wrapped, args, kwargs, CallInfo(), facts_of=facts_from_result)

    return wrapper


def _sync_wrapper(instrument: Instrument) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if inside_logged_call():
            return wrapped(*args, **kwargs)
        started_at = time.time()
        started_ns = time.perf_counter_ns()
        result = wrapped(*args, **kwargs)
        if isinstance(result, AsyncIterator):
            return instrument.observe_stream(result, CallInfo(), started_ns=started_ns, started_at=started_at)
        _log_sync(instrument, result, started_ns, started_at)
        return result

    return wrapper


def _stream_wrapper(instrument: Instrument) -> Any:
    @wrapt.decorator
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return instrument.intercept_stream(wrapped, args, kwargs, CallInfo())

    return wrapper


def _log_sync(instrument: Instrument, result: Any, started_ns: int, started_at: float) -> None:
    facts = facts_from_result(result)
    if facts is None:
        warn_no_usage(result)
        return
    usage_logger = instrument.usage_logger
    coro = instrument.deliver(facts, CallInfo(), started_ns=started_ns, started_at=started_at)
    try:
        # Priced and handed over on the logger's own loop, whatever thread or loop calls us; only
        # inline mode waits for it (deliver never raises).
        if usage_logger.waits:
            usage_logger.run(coro, _SYNC_PRICING_TIMEOUT_S + usage_logger.config.timeout_s)
        else:
            usage_logger.run_soon(coro)
    except Exception as exc:
        logger.warning("llmring-usage: could not log a call: %s", exc)
