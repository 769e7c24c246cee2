"""LoggerConfig: every option of a usage logger, checked once where the user gives it."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigurationError

DeliveryMode = Literal["inline", "background"]
DELIVERY_MODES: tuple[str, ...] = ("inline", "background")

ENV_SERVER_URL = "LLMRING_SERVER_URL"
ENV_API_KEY = "LLMRING_API_KEY"
ENV_DELIVERY = "LLMRING_USAGE_DELIVERY"
ENV_JOURNAL_PATH = "LLMRING_USAGE_JOURNAL"

DEFAULT_ORIGIN = "llmring-usage"
_DEFAULT_TIMEOUT_S = 1.0
"""Inline mode: the most a call waits for its record to reach the server."""
_DEFAULT_SEND_TIMEOUT_S = 10.0
_DEFAULT_MAX_CONCURRENCY = 8
_DEFAULT_MAX_QUEUE_SIZE = 10_000


@dataclass(frozen=True)
class LoggerConfig:
    """Where records go and how: validated at construction, immutable afterwards."""

    server_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    delivery: DeliveryMode = "inline"
    timeout_s: float = _DEFAULT_TIMEOUT_S
    send_timeout_s: float = _DEFAULT_SEND_TIMEOUT_S
    journal_path: Path | None = None
    max_concurrency: int = _DEFAULT_MAX_CONCURRENCY
    max_queue_size: int = _DEFAULT_MAX_QUEUE_SIZE

    def __post_init__(self) -> None:
        if self.server_url is not None:
            object.__setattr__(self, "server_url", check_server_url(self.server_url))
            if not self.api_key:
                raise ConfigurationError(
                    f"an API key is needed to log to {self.server_url}: pass api_key= or set {ENV_API_KEY}"
                )
        if self.delivery not in DELIVERY_MODES:
            raise ConfigurationError(
                f"delivery must be one of {', '.join(DELIVERY_MODES)}, not {self.delivery!r}"
            )
        for name in ("timeout_s", "send_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ConfigurationError(f"{name} must be a number >= 0, not {value!r}")
        if self.send_timeout_s == 0:
            raise ConfigurationError("send_timeout_s must be > 0")
        for name in ("max_concurrency", "max_queue_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, not {value!r}")
        # Resolved now, so that the default path (which follows HOME and the environment) is part
        # of the configuration's identity.
        path = (
            Path(self.journal_path).expanduser() if self.journal_path is not None else default_journal_path()
        )
        object.__setattr__(self, "journal_path", path)

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity of the configuration, for sharing one logger (the API key only as a hash)."""
        digest = hashlib.sha256(self.api_key.encode()).hexdigest() if self.api_key else None
        return (
            self.server_url,
            digest,
            self.delivery,
            self.timeout_s,
            self.send_timeout_s,
            str(self.journal_path) if self.journal_path else None,
            self.max_concurrency,
            self.max_queue_size,
        )


def default_journal_path() -> Path:
    """`$LLMRING_USAGE_JOURNAL`, else `$XDG_DATA_HOME/llmring-usage/usage.db` (~/.local/share)."""
    configured = os.environ.get(ENV_JOURNAL_PATH)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "llmring-usage" / "usage.db"


def check_server_url(url: Any) -> str:
    """An http(s) URL with a host, without a trailing slash; ConfigurationError otherwise."""
    if not isinstance(url, str):
        raise ConfigurationError(f"server_url must be a string, not {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"server_url must be an http:// or https:// URL with a host, not {url!r}")
    return url.strip().rstrip("/")


def check_metadata(metadata: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of extra metadata; ConfigurationError otherwise."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ConfigurationError(f"metadata must be a dict, not {type(metadata).__name__}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"metadata must be JSON-serialisable: {exc}") from exc
    return dict(metadata)


def check_origin(origin: Any) -> str:
    if not isinstance(origin, str) or not origin.strip():
        raise ConfigurationError(f"origin must be a non-empty string, not {origin!r}")
    return origin


def resolve_config(
    *,
    server_url: str | None = None,
    api_key: str | None = None,
    ring: Any = None,
    **options: Any,
) -> LoggerConfig:
    """Explicit arguments, else LLMRING_SERVER_URL / LLMRING_API_KEY, else the ring's own server.

    With no server anywhere the records go to the local journal only (the embedded default).
    """
    ring_client = getattr(ring, "server_client", None) if ring is not None else None
    url = server_url or os.environ.get(ENV_SERVER_URL) or getattr(ring, "server_url", None) or None
    key = api_key or os.environ.get(ENV_API_KEY) or getattr(ring_client, "api_key", None) or None
    if options.get("delivery") is None:
        options["delivery"] = os.environ.get(ENV_DELIVERY) or "inline"
    options = {name: value for name, value in options.items() if value is not None}
    return LoggerConfig(server_url=url, api_key=key, **options)
