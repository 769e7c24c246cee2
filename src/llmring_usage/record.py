"""UsageRecord, the body of POST /api/v1/log, and Receipt, the server's answer to it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RECORD_ID_KEY = "record_id"
"""The metadata key holding the client-generated record id, used to find a record on the server."""

CLIENT_TIMESTAMP_KEY = "client_timestamp"


def new_record_id() -> str:
    return uuid.uuid4().hex


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class UsageRecord(BaseModel):
    """One LLM call, exactly as llmring-server's UsageLogRequest expects it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    provider: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    alias: str | None = None
    profile: str | None = None
    cost: float | None = Field(default=None, ge=0)
    latency_ms: int | None = Field(default=None, ge=0)
    origin: str | None = None
    id_at_origin: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def record_id(self) -> str:
        """The client-generated id carried in metadata (empty for records built without one)."""
        return str(self.metadata.get(RECORD_ID_KEY, ""))

    def to_body(self) -> dict[str, Any]:
        """The JSON body to POST: optional fields that are unset are left out."""
        return self.model_dump(exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.to_body(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> UsageRecord:
        return cls.model_validate_json(text)


@dataclass(frozen=True)
class Receipt:
    """What the server answered for one record (or what the journal remembers of it)."""

    record_id: str
    log_id: str
    cost: float | None
    timestamp: str

    @classmethod
    def from_response(cls, record_id: str, body: dict[str, Any]) -> Receipt:
        cost = body.get("cost")
        return cls(
            record_id=record_id,
            log_id=str(body.get("log_id", "")),
            cost=float(cost) if cost is not None else None,
            timestamp=str(body.get("timestamp", "")),
        )
