"""with_usage_logging(ring): a wrapt proxy that logs every chat of an existing ring."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, TypeVar

import wrapt

from ._instrument import Instrument, guard_builtin_logging, make_interceptors
from ._setup import build_instrument
from .delivery.logger import UsageLogger
from .errors import ConfigurationError

R = TypeVar("R")


class UsageLoggingRing(wrapt.BaseObjectProxy):  # type: ignore[type-arg]
    """The ring itself for every purpose (isinstance, attributes, `__wrapped__`), but its chat
    methods log one usage record per call."""

    def __init__(self, ring: Any, instrument: Instrument) -> None:
        super().__init__(ring)
        self._self_instrument = instrument
        self._self_methods = {
            name: wrapt.FunctionWrapper(getattr(ring, name), interceptor)
            for name, interceptor in make_interceptors(instrument).items()
            if callable(getattr(ring, name, None))
        }

    @property
    def usage_logger(self) -> UsageLogger:
        return self._self_instrument.usage_logger

    def __repr__(self) -> str:
        return f"<UsageLoggingRing of {self.__wrapped__!r}>"


def _intercepted(name: str) -> property:
    def get(self: UsageLoggingRing) -> Any:
        try:
            return self._self_methods[name]
        except KeyError:  # the ring has no such method
            raise AttributeError(name) from None

    return property(get, doc=f"The ring's {name}, logging one usage record per call.")


for _name in ("chat", "chat_stream", "chat_with_alias", "chat_with_conversation"):
    setattr(UsageLoggingRing, _name, _intercepted(_name))
del _name


def with_usage_logging(
    ring: R,
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    origin: str | None = None,
    metadata: dict[str, Any] | None = None,
    delivery: str | None = None,
    timeout_s: float | None = None,
    journal_path: str | Path | None = None,
    usage_logger: UsageLogger | None = None,
) -> R:
    """Return `ring` wrapped so that each successful call leaves exactly one usage record.

    Server: `server_url`/`api_key`, else LLMRING_SERVER_URL/LLMRING_API_KEY, else the ring's own;
    with none, records go to the local journal. A ring that already logs is returned as it is.
    Options are checked here: a bad one raises ConfigurationError now, never at call time.
    """
    if isinstance(getattr(ring, "usage_logger", None), UsageLogger):
        return ring
    chat = getattr(ring, "chat", None)
    if chat is None or not inspect.iscoroutinefunction(chat):
        raise ConfigurationError(
            f"with_usage_logging needs an LLMRing or an object with an async chat(request, "
            f"profile=None) method, not {type(ring).__name__}"
        )
    instrument = build_instrument(
        ring=ring,
        server_url=server_url,
        api_key=api_key,
        origin=origin,
        metadata=metadata,
        delivery=delivery,
        timeout_s=timeout_s,
        journal_path=journal_path,
        usage_logger=usage_logger,
    )
    guard_builtin_logging(ring)
    return UsageLoggingRing(ring, instrument)  # type: ignore[return-value]
