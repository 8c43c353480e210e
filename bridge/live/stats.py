"""Process-wide figures across calls, for load runs and quick looks (``GET /stats``), mirrored into
the Prometheus metrics."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from typing import Any

from bridge.core.call import CallCore
from bridge.core.events import Direction
from bridge.live.loop_lag import LagCounts
from bridge.live.metrics import BridgeMetrics
from quality.latency import LatencyHistogram


class BridgeStats:
    """Process-wide figures across calls, for load runs and quick looks: ``GET /stats``."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics
        self._ended_latency = {d: LatencyHistogram() for d in Direction}  # the ended calls' bridge latency
        self._ended_misses = dict.fromkeys(Direction, 0)
        self.loop_lag = LatencyHistogram()
        self.lag_counts = LagCounts()
        self.gc_pauses = {g: LatencyHistogram() for g in (0, 1, 2)}
        self._gc_noted: list[tuple[int, float]] = []  # pauses the gc callback noted, not yet recorded
        self.calls_started = 0
        self.calls_ended = 0

    def observe_loop_lag(self, lag_s: float) -> None:
        self.loop_lag.record(lag_s)
        self.lag_counts.observe(lag_s)
        self.metrics.loop_lag.observe(lag_s)

    def observe_gc_pause(self, generation: int, pause_s: float) -> None:
        """Note one collection's pause; ``gc.callbacks`` calls this. It only appends to a list: a
        collection can start inside any allocation, among them one made while this thread holds
        prometheus_client's multiprocess lock (creating a labelled child writes its file under it),
        and an ``observe`` here would take that lock again and hang the worker for good.
        :meth:`flush_gc_pauses` records the noted pauses."""
        self._gc_noted.append((generation, pause_s))

    def flush_gc_pauses(self) -> None:
        """Record the pauses noted since the last flush (every second, and before /metrics and
        /stats answer): into ``gc_pauses`` and ``mosbridge_gc_pause_seconds``."""
        noted, self._gc_noted = self._gc_noted, []
        for generation, pause_s in noted:
            self.gc_pauses[generation].record(pause_s)
            self.metrics.gc_pause.labels(generation=str(generation)).observe(pause_s)

    def track(self, core: CallCore) -> None:
        """Hand a new call's bridge latency on to ``mosbridge_bridge_latency_seconds`` as its core
        buckets it (64 frames at a time, and at each :meth:`publish_latency`)."""
        for d in Direction:
            core.latency[d].tap(functools.partial(self.metrics.frames, d))

    def call_ended(self, core: CallCore) -> None:
        """Keep an ended call's latencies and its deadline misses in the process figures."""
        for d in Direction:
            self._ended_latency[d].merge(core.latency[d])
            self._ended_misses[d] += core.deadline_misses[d]

    def publish_latency(self, live: Iterable[CallCore]) -> None:
        """Hand every frame the calls recorded so far on to ``mosbridge_bridge_latency_seconds``
        (before a scrape, and every second with workers)."""
        for core in live:
            for d in Direction:
                core.latency[d].flush()
        self.metrics.flush_frames()

    def latency(self, live: Iterable[CallCore]) -> tuple[dict[Direction, LatencyHistogram], dict[Direction, int]]:
        """Bridge latency and deadline misses per direction over the ended calls and ``live`` ones:
        each call's core records every frame once, and a read merges the calls' histograms (a cost
        per bucket and call, at each read, instead of a second record of every frame)."""
        misses = dict(self._ended_misses)
        total = {d: LatencyHistogram() for d in Direction}
        for d in Direction:
            total[d].merge(self._ended_latency[d])
        for core in live:
            for d in Direction:
                total[d].merge(core.latency[d])
                misses[d] += core.deadline_misses[d]
        return total, misses

    def to_dict(self, live: Collection[CallCore]) -> dict[str, Any]:
        self.flush_gc_pauses()
        out: dict[str, Any] = {"calls_live": len(live), "calls_started": self.calls_started,
                               "calls_ended": self.calls_ended}
        latency, misses = self.latency(live)
        for d in Direction:
            s = latency[d].summary()
            out[d.value] = {"frames": s.count, "deadline_misses": misses[d],
                            "bridge_latency_ms": {"p50": s.p50_ms, "p99": s.p99_ms, "max": s.max_ms}}
        lag = self.loop_lag.summary()
        out["event_loop_lag_ms"] = {"p50": lag.p50_ms, "p99": lag.p99_ms, "max": lag.max_ms}
        out["gc_pause_ms"] = {}
        for g, h in self.gc_pauses.items():
            s = h.summary()
            out["gc_pause_ms"][str(g)] = {"collections": s.count, "total": s.count * s.mean_ms, "p99": s.p99_ms,
                                          "max": s.max_ms}
        return out
