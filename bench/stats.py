"""Percentiles and the median-of-repetitions summary used in the report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the *fraction* quantile (0..1) of *values*, nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Return the median, minimum and maximum of per-repetition values."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": statistics.median(finite),
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }


def count_between(timestamps: Sequence[float], start: float, end: float) -> int:
    """Count the timestamps in the half-open interval [start, end)."""
    return sum(1 for stamp in timestamps if start <= stamp < end)
