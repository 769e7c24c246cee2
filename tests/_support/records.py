"""Reading what a usage logger journaled, building requests, and a ring that keeps its answer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

from llmring import LLMRing
from llmring.schemas import LLMRequest, Message

from llmring_usage import UsageRecord


def journal_records(usage_logger: Any) -> list[UsageRecord]:
    """Every record in the logger's journal, oldest first (queued records are journaled first)."""
    usage_logger.flush(timeout_s=5.0)
    rows = usage_logger.journal.query("SELECT body FROM records ORDER BY seq")
    return [UsageRecord.from_json(row["body"]) for row in rows]


def request(model: str, content: str = "What is usage logging?") -> LLMRequest:
    """A one-message llmring request for `model`."""
    return LLMRequest(model=model, messages=[Message(role="user", content=content)])


class CapturingRing(LLMRing):
    """A real LLMRing that remembers the response object its chat returned."""

    async def chat(self, request: Any, profile: Any = None) -> Any:
        self.last_response = await super().chat(request, profile)
        return self.last_response


def identified_record(origin: str, *, latency_ms: int | None = None) -> UsageRecord:
    """A gpt-4o-mini record (14 in, 286 out, $0.0001737) with its own record id and timestamp."""
    return UsageRecord(
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=14,
        output_tokens=286,
        cost=0.0001737,
        latency_ms=latency_ms,
        origin=origin,
        metadata={"record_id": uuid4().hex, "client_timestamp": datetime.now(timezone.utc).isoformat()},
    )
