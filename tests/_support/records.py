"""Reading what a usage logger journaled, building requests, and a ring that keeps its answer."""

from __future__ import annotations

from typing import Any

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
