"""Turning user options into an Instrument: configuration, shared logger, pricer, metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._instrument import Instrument
from .config import DEFAULT_ORIGIN, check_metadata, check_origin, resolve_config
from .delivery.logger import UsageLogger, shared_logger
from .errors import ConfigurationError
from .pricing import Pricer, RegistryPricer, RingPricer


def build_instrument(
    *,
    ring: Any = None,
    server_url: str | None = None,
    api_key: str | None = None,
    origin: str | None = None,
    metadata: dict[str, Any] | None = None,
    delivery: str | None = None,
    timeout_s: float | None = None,
    journal_path: str | Path | None = None,
    usage_logger: UsageLogger | None = None,
    registry_url: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> Instrument:
    """Validate every option now (wrap or decorate time) and assemble the Instrument."""
    extra = check_metadata(metadata)
    if usage_logger is not None:
        if not isinstance(usage_logger, UsageLogger):
            raise ConfigurationError("usage_logger must be a UsageLogger")
        chosen = usage_logger
    else:
        config = resolve_config(
            server_url=server_url,
            api_key=api_key,
            ring=ring,
            delivery=delivery,
            timeout_s=timeout_s,
            journal_path=journal_path,
        )
        chosen = shared_logger(config)
    ring_origin = getattr(ring, "origin", None)
    if origin is None:
        origin = ring_origin if isinstance(ring_origin, str) and ring_origin != "llmring" else DEFAULT_ORIGIN
    pricer: Pricer
    if ring is not None and hasattr(ring, "calculate_cost"):
        pricer = RingPricer(ring)
    else:
        pricer = RegistryPricer(registry_url)
    for name, value in (("provider", provider), ("model", model)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigurationError(f"{name} must be a non-empty string, not {value!r}")
    return Instrument(
        usage_logger=chosen,
        pricer=pricer,
        origin=check_origin(origin),
        metadata=extra,
        provider=provider,
        model=model,
    )
