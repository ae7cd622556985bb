"""Percentiles and medians; nothing here knows about processes or HTTP."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the closest ranks; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers; NaN if there are none."""
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(numbers) if numbers else math.nan


def rounded(value: float, digits: int = 2) -> float | None:
    """A JSON-friendly number: NaN becomes None."""
    return None if value is None or math.isnan(value) else round(value, digits)
