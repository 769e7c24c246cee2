"""The one place that times a call, builds its UsageRecord and hands it to the logger.

Interceptors follow wrapt's signature `wrapper(wrapped, instance, args, kwargs)`. A context
variable marks the call being logged: a call nested inside it (`chat_with_alias` -> `chat`, a
double wrap, llmring's own built-in logging) sees the mark and logs nothing of its own, so each
call gives exactly one record.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .delivery.logger import UsageLogger
from .extract import CallFacts, StreamTally, facts_from_llm_response, split_model
from .pricing import Pricer
from .record import CLIENT_TIMESTAMP_KEY, RECORD_ID_KEY, UsageRecord, new_record_id

logger = logging.getLogger("llmring_usage")

_logging_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmring_usage_logging_call", default=False
)


def inside_logged_call() -> bool:
    """True while a call that llmring-usage logs is running in this context."""
    return _logging_call.get()


class CallInfo(NamedTuple):
    """What the caller's arguments say about a call: alias, profile, conversation.

    A NamedTuple: built on every call, on the caller's path, it must be cheap.
    """

    model_ref: str = ""
    profile: str | None = None
    conversation_id: str | None = None
    request: Any = None

    @property
    def alias(self) -> str | None:
        return self.model_ref if self.model_ref and ":" not in self.model_ref else None


@dataclass
class Instrument:
    """Everything needed to turn a finished call into a record and deliver it."""

    usage_logger: UsageLogger
    pricer: Pricer
    origin: str
    metadata: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    model: str | None = None

    def build(
        self,
        facts: CallFacts,
        info: CallInfo,
        *,
        cost: float | None,
        latency_ms: int,
        started_at: float,
        extra: dict[str, Any] | None = None,
    ) -> UsageRecord:
        provider = self.provider or facts.provider
        if provider == "unknown" and info.model_ref:
            provider = split_model(info.model_ref)[0]
        model = self.model or facts.model
        metadata: dict[str, Any] = {
            **self.metadata,
            "model_alias": f"{provider}:{model}",
            "finish_reason": facts.finish_reason,
            "usage_source": facts.usage.source,
            RECORD_ID_KEY: new_record_id(),
            CLIENT_TIMESTAMP_KEY: datetime.fromtimestamp(started_at, timezone.utc).isoformat(),
            **facts.extra,
            **(extra or {}),
        }
        if info.conversation_id:
            metadata["conversation_id"] = info.conversation_id
        return UsageRecord(
            model=model,
            provider=provider,
            input_tokens=facts.usage.input_tokens,
            output_tokens=facts.usage.output_tokens,
            cached_input_tokens=facts.usage.cached_input_tokens,
            alias=info.alias,
            profile=info.profile if info.alias else None,
            cost=cost,
            latency_ms=latency_ms,
            origin=self.origin,
            id_at_origin=info.conversation_id,
            metadata=metadata,
        )

    async def deliver(
        self,
        facts: CallFacts,
        info: CallInfo,
        *,
        started_ns: int,
        started_at: float,
        extra: dict[str, Any] | None = None,
        wait: bool = True,
    ) -> None:
        """Price, build and hand over one record. Never raises: a logging failure is a warning.

        When nobody waits for the record (background mode, a stream closed early) the worker
        builds it: the caller's part is then only extraction, timing and a queue append.
        """
        latency_ms = _elapsed_ms(started_ns)
        if info.request is not None:  # a queued builder must not keep the caller's messages alive
            info = CallInfo(info.model_ref, info.profile, info.conversation_id)
        try:
            cost = await self.pricer.price(facts)
            build = functools.partial(
                self.build, facts, info, cost=cost, latency_ms=latency_ms, started_at=started_at, extra=extra
            )
            if wait and self.usage_logger.waits:
                await self.usage_logger.alog(build())
            else:
                self.usage_logger.log_nowait(build)
        except Exception as exc:
            logger.warning("llmring-usage: could not log a call: %s", exc)

    # -- interceptors ------------------------------------------------------------------------

    async def intercept_call(
        self,
        wrapped: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: CallInfo,
        facts_of: Callable[[Any], CallFacts | None] | None = None,
    ) -> Any:
        """Await one call and log what it returned (a response, or a stream to log at its end).

        `facts_of` reads the usage of a result (default: an llmring LLMResponse); a result with
        none is returned unlogged.
        """
        if _logging_call.get():
            return await wrapped(*args, **kwargs)
        started_at = time.time()
        started_ns = time.perf_counter_ns()
        token = _logging_call.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        finally:
            _logging_call.reset(token)
        if _is_async_iterator(result):
            return self.observe_stream(result, info, started_ns=started_ns, started_at=started_at)
        if facts_of is not None:
            facts = facts_of(result)
        elif hasattr(result, "model"):
            facts = facts_from_llm_response(result, default_provider=split_model(info.model_ref)[0])
        else:
            facts = None
        if facts is None:
            warn_no_usage(result)
            return result
        await self.deliver(facts, info, started_ns=started_ns, started_at=started_at)
        return result

    def intercept_stream(
        self,
        wrapped: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        info: CallInfo,
    ) -> Any:
        """Start a stream and return it wrapped so that its end, however it comes, is logged."""
        if _logging_call.get():
            return wrapped(*args, **kwargs)
        started_at = time.time()
        started_ns = time.perf_counter_ns()
        return self.observe_stream(
            wrapped(*args, **kwargs), info, started_ns=started_ns, started_at=started_at
        )

    def observe_stream(self, stream: Any, info: CallInfo, *, started_ns: int, started_at: float) -> Any:
        """`stream` wrapped to log its end, unless it already is (a nested or doubled wrap)."""
        if isinstance(stream, LoggedStream):
            return stream
        return LoggedStream(stream, self, info, started_ns=started_ns, started_at=started_at)


class LoggedStream:
    """An async iterator over an llmring stream that logs one record when the stream ends.

    Chunks pass through unchanged. The end is a full read, an error from the provider, an
    early `aclose()` or `break` (then the stream is closed when it is collected), or the task
    being cancelled. A stream that yielded nothing and failed is a failed call: no record.
    """

    def __init__(
        self,
        inner: Any,
        instrument: Instrument,
        info: CallInfo,
        *,
        started_ns: int,
        started_at: float,
    ) -> None:
        self._inner = inner
        self._generator = _logged_chunks(inner, instrument, info, started_ns, started_at)

    def __aiter__(self) -> LoggedStream:
        return self

    async def __anext__(self) -> Any:
        return await self._generator.__anext__()

    async def aclose(self) -> None:
        await self._generator.aclose()

    async def asend(self, value: Any) -> Any:
        return await self._generator.asend(value)

    async def athrow(self, *args: Any) -> Any:
        return await self._generator.athrow(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _logged_chunks(
    inner: Any, instrument: Instrument, info: CallInfo, started_ns: int, started_at: float
) -> AsyncGenerator[Any, None]:
    tally = StreamTally(started_ns)
    ending = "error"
    exhausted = False
    try:
        while True:
            # The mark is set around each step only, never across a yield to the caller.
            token = _logging_call.set(True)
            try:
                chunk = await inner.__anext__()
            except StopAsyncIteration:
                exhausted = True
                ending = "completed"
                break
            finally:
                _logging_call.reset(token)
            tally.add(chunk)
            yield chunk
    except GeneratorExit:
        ending = "closed_early"
        raise
    except BaseException as exc:
        ending = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
        raise
    finally:
        if not exhausted:
            await _close_quietly(inner)
        if tally.chunks:
            facts = tally.facts(model_ref=info.model_ref, request=info.request)
            extra = {"stream": True, "stream_end": ending, "chunks": tally.chunks}
            if tally.time_to_first_token_ms is not None:
                extra["time_to_first_token_ms"] = tally.time_to_first_token_ms
            await instrument.deliver(
                facts,
                info,
                started_ns=started_ns,
                started_at=started_at,
                extra=extra,
                wait=ending == "completed",
            )


async def _close_quietly(inner: Any) -> None:
    close = getattr(inner, "aclose", None)
    if close is None:
        return
    token = _logging_call.set(True)
    try:
        await close()
    except BaseException:
        pass
    finally:
        _logging_call.reset(token)


_warned_types: set[str] = set()


def warn_no_usage(result: Any) -> None:
    """Say once per result type that a call could not be logged because it reports no usage."""
    name = type(result).__qualname__
    if name not in _warned_types:
        _warned_types.add(name)
        logger.warning(
            "llmring-usage: found no usage in a %s, so this call is not logged; return an llmring "
            "LLMResponse or a provider SDK response",
            name,
        )


def _is_async_iterator(obj: Any) -> bool:
    # The ABC looks at the class (as `async for` does) and caches its answer per class; hasattr on
    # a pydantic response goes through BaseModel.__getattr__'s slow miss path (~4 us a call).
    return isinstance(obj, AsyncIterator)


def _elapsed_ms(started_ns: int) -> int:
    return max(int(round((time.perf_counter_ns() - started_ns) / 1e6)), 0)


# -- method interceptors shared by the proxy and LLMRingExtended ---------------------------------

Interceptor = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _request_info(args: tuple[Any, ...], kwargs: dict[str, Any], profile_position: int) -> CallInfo:
    request = _arg(args, kwargs, 0, "request")
    return CallInfo(
        model_ref=str(getattr(request, "model", "") or ""),
        profile=_arg(args, kwargs, profile_position, "profile"),
        request=request,
    )


def make_interceptors(instrument: Instrument) -> dict[str, Interceptor]:
    """wrapt wrappers for chat, chat_stream, chat_with_alias and chat_with_conversation."""

    async def chat(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await instrument.intercept_call(wrapped, args, kwargs, _request_info(args, kwargs, 1))

    def chat_stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return instrument.intercept_stream(wrapped, args, kwargs, _request_info(args, kwargs, 1))

    async def chat_with_alias(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        messages = _arg(args, kwargs, 1, "messages") or []
        info = CallInfo(
            model_ref=str(_arg(args, kwargs, 0, "alias_or_model") or ""),
            profile=_arg(args, kwargs, 4, "profile"),
            request=_Messages(messages),
        )
        return await instrument.intercept_call(wrapped, args, kwargs, info)

    async def chat_with_conversation(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        info = _request_info(args, kwargs, 3)
        conversation_id = _arg(args, kwargs, 1, "conversation_id")
        if conversation_id is not None:
            info = CallInfo(info.model_ref, info.profile, str(conversation_id), info.request)
        return await instrument.intercept_call(wrapped, args, kwargs, info)

    return {
        "chat": chat,
        "chat_stream": chat_stream,
        "chat_with_alias": chat_with_alias,
        "chat_with_conversation": chat_with_conversation,
    }


@dataclass(frozen=True)
class _Messages:
    messages: list[Any]


# -- llmring's own built-in logging --------------------------------------------------------------


class _BuiltinLoggingGuard:
    """Stands in for a ring's `logging_service`: while llmring-usage logs a call, llmring's own
    usage log is skipped (it would be a second record); conversation logging still happens."""

    def __init__(self, service: Any) -> None:
        self.__dict__["_guarded"] = service

    async def log_request_response(self, **kwargs: Any) -> None:
        service = self._guarded
        if not _logging_call.get():
            await service.log_request_response(**kwargs)
            return
        if getattr(service, "log_conversations", False):
            try:
                await service._log_conversation(**kwargs)
            except Exception as exc:
                logger.warning("llmring-usage: llmring could not log the conversation: %s", exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guarded, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._guarded, name, value)


def guard_builtin_logging(ring: Any) -> None:
    """Make llmring's built-in usage logging of `ring` step aside for calls we log."""
    service = getattr(ring, "logging_service", None)
    if service is None or isinstance(service, _BuiltinLoggingGuard):
        return
    ring.logging_service = _BuiltinLoggingGuard(service)
