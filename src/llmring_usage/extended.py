"""LLMRingExtended: an llmring LLMRingSession that logs its own usage, with no extra code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wrapt
from llmring.service_extended import LLMRingSession

from ._instrument import Instrument, guard_builtin_logging, make_interceptors
from ._setup import build_instrument
from .delivery.logger import UsageLogger


class LLMRingExtended(LLMRingSession):  # type: ignore[misc]
    """An LLMRingSession whose chat, chat_stream, chat_with_alias and chat_with_conversation each
    log one usage record (llmring's own usage log steps aside, conversation storage stays).

    Takes LLMRingSession's arguments plus llmring-usage's options (`origin` is shared).
    """

    def __init__(
        self,
        *args: Any,
        metadata: dict[str, Any] | None = None,
        delivery: str | None = None,
        timeout_s: float | None = None,
        journal_path: str | Path | None = None,
        usage_logger: UsageLogger | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        instrument = build_instrument(
            ring=self,
            server_url=kwargs.get("server_url"),
            api_key=kwargs.get("api_key"),
            origin=None,
            metadata=metadata,
            delivery=delivery,
            timeout_s=timeout_s,
            journal_path=journal_path,
            usage_logger=usage_logger,
        )
        self._usage_instrument: Instrument = instrument
        guard_builtin_logging(self)
        for name, interceptor in make_interceptors(instrument).items():
            setattr(self, name, wrapt.FunctionWrapper(getattr(self, name), interceptor))

    @property
    def usage_logger(self) -> UsageLogger:
        return self._usage_instrument.usage_logger
