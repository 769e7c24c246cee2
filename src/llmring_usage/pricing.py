"""The cost of a call, from llmring's own CostCalculator: no network I/O beyond llmring's registry."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from .extract import CallFacts

logger = logging.getLogger("llmring_usage")


def _usage_dict(facts: CallFacts) -> dict[str, Any]:
    # llmring's calculator subtracts cached reads from prompt tokens, as the record counts them.
    # Cache writes (Anthropic) are counted in input_tokens too, but the calculator prices them on
    # top of the prompt: take them out of the prompt so they are billed once, at the write rate.
    cache_writes = int(facts.extra.get("cache_creation_input_tokens", 0) or 0)
    return {
        "prompt_tokens": max(facts.usage.input_tokens - cache_writes, 0),
        "completion_tokens": facts.usage.output_tokens,
        "cached_tokens": facts.usage.cached_input_tokens,
        "cache_creation_input_tokens": cache_writes,
    }


def _response_for(facts: CallFacts) -> Any:
    from llmring.schemas import LLMResponse

    return LLMResponse(
        content="",
        model=f"{facts.provider}:{facts.model}",
        usage=_usage_dict(facts),
        finish_reason=facts.finish_reason,
    )


def _total(cost_info: dict[str, float] | None) -> float | None:
    if not cost_info or cost_info.get("total_cost") is None:
        return None
    return float(cost_info["total_cost"])


class Pricer(Protocol):
    async def price(self, facts: CallFacts) -> float | None: ...


class RingPricer:
    """Prices with the wrapped ring's `calculate_cost`, so with the registry that ring uses."""

    __slots__ = ("_ring",)

    def __init__(self, ring: Any) -> None:
        self._ring = ring

    async def price(self, facts: CallFacts) -> float | None:
        if facts.reported_cost is not None:
            return facts.reported_cost
        try:
            return _total(await self._ring.calculate_cost(_response_for(facts)))
        except Exception as exc:  # pricing must never fail the caller's call
            logger.debug("llmring-usage: could not price %s:%s: %s", facts.provider, facts.model, exc)
            return None


class RegistryPricer:
    """Prices with a CostCalculator over its own llmring RegistryClient (for calls made without a ring)."""

    def __init__(self, registry_url: str | None = None) -> None:
        self._registry_url = registry_url
        self._calculator: Any = None

    def _get_calculator(self) -> Any:
        if self._calculator is None:
            from llmring.registry import RegistryClient
            from llmring.services.cost_calculator import CostCalculator

            self._calculator = CostCalculator(RegistryClient(registry_url=self._registry_url))
        return self._calculator

    async def price(self, facts: CallFacts) -> float | None:
        if facts.reported_cost is not None:
            return facts.reported_cost
        try:
            return _total(await self._get_calculator().calculate_cost(_response_for(facts)))
        except Exception as exc:
            logger.debug("llmring-usage: could not price %s:%s: %s", facts.provider, facts.model, exc)
            return None
