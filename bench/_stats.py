"""Percentiles and summaries of timing samples (nanoseconds in, microseconds out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary_us(samples_ns: Sequence[int]) -> dict[str, Any]:
    """n, p50, p95, p99, mean and max of nanosecond samples, in microseconds."""
    values = [value / 1000 for value in samples_ns]
    return {
        "n": len(values),
        "p50_us": round(percentile(values, 50), 2),
        "p95_us": round(percentile(values, 95), 2),
        "p99_us": round(percentile(values, 99), 2),
        "mean_us": round(sum(values) / len(values), 2) if values else math.nan,
        "max_us": round(max(values), 2) if values else math.nan,
    }


def added_us(variant: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """What a variant adds over the base at each percentile (variant minus base)."""
    return {key: round(variant[key] - base[key], 2) for key in ("p50_us", "p95_us", "p99_us")}
