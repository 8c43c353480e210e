"""Event-loop lag figures from a cumulative bucket histogram (Prometheus ``le`` buckets).

Pure: a caller hands in bucket bounds and cumulative counts, say the difference of two snapshots
of the bridge's lag histogram, and gets the p99 interpolated within its bucket exactly as
Prometheus' ``histogram_quantile`` does, plus the share of ticks over 5 and over 20 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Final

# Lag p99 above this means frames wait unread long enough to show as jitter of their own: the
# report's "saturated" flag, at the MosbridgeEventLoopLag alert's threshold (deploy/prometheus).
SATURATED_P99_MS: Final = 20.0
# upper bounds of the bridge's lag buckets, s (capture format version 1 records counts in these)
LAG_BOUNDS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, math.inf)


@dataclass(frozen=True)
class LagFigures:
    ticks: int
    p99_ms: float
    over_5ms_pct: float
    over_20ms_pct: float

    @property
    def saturated(self) -> bool:
        return self.p99_ms > SATURATED_P99_MS

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "saturated": self.saturated}


def histogram_quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """Prometheus' ``histogram_quantile``: linear within the bucket that holds rank q·total, the
    lowest bucket starting at 0; a rank in the +Inf bucket gives the highest finite bound."""
    total = cumulative[-1]
    rank, lower, below = q * total, 0.0, 0.0
    for b, c in zip(bounds, cumulative, strict=True):
        if c >= rank:
            if math.isinf(b):
                return lower
            return lower + (b - lower) * (rank - below) / (c - below) if c > below else b
        lower, below = b, c
    return lower


def lag_figures(bounds: Sequence[float], cumulative: Sequence[float]) -> LagFigures | None:
    """Figures for a lag histogram in seconds (bounds end with +Inf); None when it holds no tick."""
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return None

    def share_over(limit_s: float) -> float:
        at_or_below = next(c for b, c in zip(bounds, cumulative, strict=True) if b >= limit_s)
        return 100.0 * (total - at_or_below) / total

    return LagFigures(ticks=int(total), p99_ms=1000.0 * histogram_quantile(0.99, bounds, cumulative),
                      over_5ms_pct=share_over(0.005), over_20ms_pct=share_over(0.02))
