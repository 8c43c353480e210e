"""Summaries of many calls' MOS: mean, percentiles, band counts, and time buckets for charts.

Pure: the caller passes the calls (end time, MOS) and the window; nothing here reads a clock.
Percentiles interpolate linearly between order statistics (Hyndman & Fan 1996, definition 7,
the default of R's ``quantile`` and NumPy's ``percentile``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quality.bands import Band, band

PERCENTILES = (10, 50, 90)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0..100) of ascending ``sorted_values`` (Hyndman & Fan type 7)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile {pct} outside 0..100")
    h = (len(sorted_values) - 1) * pct / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


@dataclass(frozen=True)
class MosSummary:
    """Calls in a window: how many, their mean MOS, p10/p50/p90, the worst, and counts by band."""

    calls: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    min: float | None
    bands: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "mean": self.mean, "p10": self.p10, "p50": self.p50, "p90": self.p90,
                "min": self.min, "bands": dict(self.bands)}


def summarize(mos: Sequence[float]) -> MosSummary:
    bands = {b.value: 0 for b in Band}
    for m in mos:
        bands[band(m).value] += 1
    if not mos:
        return MosSummary(0, None, None, None, None, None, bands)
    s = sorted(mos)
    p10, p50, p90 = (percentile(s, p) for p in PERCENTILES)
    return MosSummary(len(s), math.fsum(s) / len(s), p10, p50, p90, s[0], bands)


@dataclass(frozen=True)
class Series:
    """Per-bucket figures for a chart: bucket starts (Unix s), mean and p10 MOS (None where a
    bucket has no calls) and call counts."""

    bucket_s: float
    t: list[float]
    mean: list[float | None]
    p10: list[float | None]
    calls: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"bucket_s": self.bucket_s, "t": self.t, "mean": self.mean, "p10": self.p10, "calls": self.calls}


def bucketize(points: Sequence[tuple[float, float]], start: float, end: float, bucket_s: float) -> Series:
    """Group (time, MOS) points into buckets [start + k·bucket_s, start + (k+1)·bucket_s) up to
    ``end``; buckets are aligned to multiples of ``bucket_s`` so charts do not shift as time
    passes. Points outside [start, end) are ignored."""
    if bucket_s <= 0 or end <= start:
        raise ValueError("need bucket_s > 0 and end > start")
    first = math.floor(start / bucket_s) * bucket_s
    n = math.ceil((end - first) / bucket_s)
    groups: list[list[float]] = [[] for _ in range(n)]
    for t, m in points:
        if start <= t < end:
            groups[int((t - first) // bucket_s)].append(m)
    summaries = [summarize(g) for g in groups]
    return Series(bucket_s, [first + k * bucket_s for k in range(n)], [s.mean for s in summaries],
                  [s.p10 for s in summaries], [s.calls for s in summaries])
