"""Pricing through llmring's CostCalculator: the ring's own, or one over a given registry."""

from __future__ import annotations

import pytest

from llmring_usage.extract import CallFacts, Usage
from llmring_usage.pricing import RegistryPricer, RingPricer

# Registry prices (llmring_usage.testing.REGISTRY_MODELS), dollars per million tokens.
GPT_4O_MINI_IN, GPT_4O_MINI_OUT, GPT_4O_MINI_CACHED = 0.15, 0.60, 0.075
HAIKU_IN, HAIKU_OUT, HAIKU_CACHE_READ, HAIKU_CACHE_WRITE = 1.00, 5.00, 0.10, 1.25
SONNET_IN, SONNET_OUT = 3.00, 15.00


def _facts(
    provider: str, model: str, input_tokens: int = 14, output_tokens: int = 286, cached: int = 0, **kw
):
    return CallFacts(provider=provider, model=model, usage=Usage(input_tokens, output_tokens, cached), **kw)


class TestRingPricer:
    """The wrapped ring's calculate_cost prices a call with the registry that ring uses."""

    async def test_prices_tokens_times_registry_prices(self, make_ring):
        """gpt-4o-mini 14 in / 286 out = 14*0.15/1e6 + 286*0.60/1e6 = 0.0001737."""
        cost = await RingPricer(make_ring()).price(_facts("openai", "gpt-4o-mini"))
        assert cost == pytest.approx(14 * GPT_4O_MINI_IN / 1e6 + 286 * GPT_4O_MINI_OUT / 1e6, abs=1e-12)
        assert cost == pytest.approx(0.0001737, abs=1e-12)

    async def test_prices_another_model_with_its_own_prices(self, make_ring):
        """claude-sonnet-4-5 uses $3 / $15 per million: 14*3e-6 + 286*15e-6."""
        cost = await RingPricer(make_ring()).price(_facts("anthropic", "claude-sonnet-4-5-20250929"))
        assert cost == pytest.approx(14 * SONNET_IN / 1e6 + 286 * SONNET_OUT / 1e6, abs=1e-12)

    async def test_cached_input_is_priced_at_the_cached_rate(self, make_ring):
        """10 of 14 prompt tokens cached: 4 at $0.15, 10 at $0.075, 286 at $0.60 per million."""
        cost = await RingPricer(make_ring()).price(_facts("openai", "gpt-4o-mini", cached=10))
        expected = (4 * GPT_4O_MINI_IN + 10 * GPT_4O_MINI_CACHED + 286 * GPT_4O_MINI_OUT) / 1e6
        assert cost == pytest.approx(expected, abs=1e-12)

    async def test_reported_cost_is_used_as_is(self, make_ring):
        """A cost the response already carries (llmring set usage["cost"]) is not recomputed."""
        cost = await RingPricer(make_ring()).price(_facts("openai", "gpt-4o-mini", reported_cost=0.5))
        assert cost == 0.5

    async def test_unknown_model_is_unpriced(self, make_ring):
        """A model missing from the registry gives None (the record is sent without a cost)."""
        assert await RingPricer(make_ring()).price(_facts("openai", "no-such-model")) is None

    async def test_a_failing_calculator_gives_none(self):
        """A ring whose calculate_cost raises never fails the caller: the cost is None."""

        class BrokenRing:
            async def calculate_cost(self, response):
                raise RuntimeError("registry exploded")

        assert await RingPricer(BrokenRing()).price(_facts("openai", "gpt-4o-mini")) is None


class TestRegistryPricer:
    """Without a ring, a CostCalculator over the given registry URL prices the call."""

    async def test_prices_from_the_given_registry(self, registry_url):
        """gpt-4o-mini 14/286 from the offline registry costs 0.0001737."""
        cost = await RegistryPricer(registry_url).price(_facts("openai", "gpt-4o-mini"))
        assert cost == pytest.approx(14 * GPT_4O_MINI_IN / 1e6 + 286 * GPT_4O_MINI_OUT / 1e6, abs=1e-12)

    async def test_anthropic_cache_reads_use_the_cache_read_rate(self, registry_url):
        """Haiku, 14 prompt tokens of which 10 cache reads: 4*$1 + 10*$0.10 + 286*$5 per million."""
        cost = await RegistryPricer(registry_url).price(
            _facts("anthropic", "claude-haiku-4-5-20251001", cached=10)
        )
        expected = (4 * HAIKU_IN + 10 * HAIKU_CACHE_READ + 286 * HAIKU_OUT) / 1e6
        assert cost == pytest.approx(expected, abs=1e-12)

    async def test_anthropic_cache_writes_use_the_cache_write_rate(self, registry_url):
        """Haiku, 14 input tokens of which 4 cache writes: 10*$1 + 4*$1.25 + 286*$5 per million.

        The record counts every prompt token in input_tokens (writes included), so writes must be
        priced once, at the write rate, not also at the base input rate.
        """
        facts = _facts(
            "anthropic",
            "claude-haiku-4-5-20251001",
            input_tokens=14,
            extra={"cache_creation_input_tokens": 4},
        )
        cost = await RegistryPricer(registry_url).price(facts)
        expected = (10 * HAIKU_IN + 4 * HAIKU_CACHE_WRITE + 286 * HAIKU_OUT) / 1e6
        assert cost == pytest.approx(expected, abs=1e-12)

    async def test_unknown_provider_is_unpriced(self, registry_url):
        """A provider the registry does not know gives None, not an exception."""
        assert await RegistryPricer(registry_url).price(_facts("nowhere", "model-x")) is None

    async def test_reported_cost_is_used_as_is(self, registry_url):
        """A reported cost skips the calculator entirely."""
        assert await RegistryPricer(registry_url).price(_facts("nowhere", "m", reported_cost=0.25)) == 0.25
