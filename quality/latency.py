"""Streaming latency percentiles in bounded memory (log-linear buckets, ~1 % resolution)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SUB = 100  # buckets per power of ten: values are kept to two significant digits


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles in milliseconds; ``count`` samples summarised."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


PENDING_MAX = 64  # values recorded before they are bucketed together


class LatencyHistogram:
    """Records durations (seconds) in log-linear buckets; memory grows with spread, not count.

    A recorded value v > 0 lands in bucket floor(log10(v) * 100); a percentile reports the
    upper edge of its bucket (at most 2.3 % above the true value), and ``max`` is exact.
    A bridge records once a frame per direction: values wait in an array (up to ``PENDING_MAX``)
    and are bucketed together, in order, before any read, for the same result at less cost.
    """

    __slots__ = ("_buckets", "_count", "_max", "_pending", "_sum", "_tap", "_zero")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._zero = 0
        self._count = 0
        self._sum = 0.0
        self._max = 0.0
        self._pending = array("d")
        self._tap: Callable[[Sequence[float]], None] | None = None

    def tap(self, fn: Callable[[Sequence[float]], None]) -> None:
        """From now on, hand every batch of recorded values to ``fn`` as they are bucketed, in order:
        another view of the same values (a Prometheus histogram's buckets) at a call per batch."""
        self._fold()
        self._tap = fn

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s values to this one's (both bucketed first): one figure over many
        histograms, read now and then (a bridge's /stats), at a cost per bucket, not per value."""
        self._fold()
        other._fold()
        buckets = self._buckets
        for k, n in other._buckets.items():
            buckets[k] = buckets.get(k, 0) + n
        self._count += other._count
        self._zero += other._zero
        self._sum += other._sum
        self._max = max(self._max, other._max)

    def flush(self) -> None:
        """Bucket what is pending now (and hand it to the tap)."""
        self._fold()

    def record(self, seconds: float, n: int = 1) -> None:
        """``n`` samples of ``seconds`` (a message carrying n frames)."""
        pending = self._pending
        if n == 1:
            pending.append(seconds)
        else:
            pending.extend([seconds] * n)
        if len(pending) >= PENDING_MAX:
            self._fold()

    def _fold(self) -> None:
        """Bucket the pending values, in order, with the running figures in locals."""
        pending = self._pending
        if not pending:
            return
        if self._tap is not None:
            self._tap(pending)
        buckets, log10, floor = self._buckets, math.log10, math.floor
        count, zero, total, top = self._count, self._zero, self._sum, self._max
        for seconds in pending:
            count += 1
            if seconds <= 0.0:
                zero += 1
                continue
            total += seconds
            if seconds > top:
                top = seconds
            k = floor(log10(seconds) * _SUB)
            buckets[k] = buckets.get(k, 0) + 1
        self._count, self._zero, self._sum, self._max = count, zero, total, top
        del pending[:]

    def percentile(self, pct: float) -> float:
        """The ``pct`` percentile in seconds (0 if nothing recorded)."""
        self._fold()
        if not self._count:
            return 0.0
        rank = math.ceil(pct / 100.0 * self._count)
        seen = self._zero
        if rank <= seen:
            return 0.0
        for k in sorted(self._buckets):
            seen += self._buckets[k]
            if seen >= rank:
                return min(math.pow(10.0, (k + 1) / _SUB), self._max)
        return self._max

    def summary(self) -> LatencySummary:
        self._fold()
        ms = 1000.0
        return LatencySummary(
            count=self._count,
            p50_ms=self.percentile(50) * ms,
            p95_ms=self.percentile(95) * ms,
            p99_ms=self.percentile(99) * ms,
            max_ms=self._max * ms,
            mean_ms=self._sum / self._count * ms if self._count else 0.0,
        )
