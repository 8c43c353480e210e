"""Process-wide figures across calls, for load runs and quick looks (``GET /stats``), mirrored into
the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from bridge.core.call import DEADLINE_S
from bridge.core.events import Direction, Outgoing
from bridge.live.loop_lag import LagCounts
from bridge.live.metrics import BridgeMetrics
from quality.latency import LatencyHistogram


class BridgeStats:
    """Process-wide figures across calls, for load runs and quick looks: ``GET /stats``."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics
        self.latency = {d: LatencyHistogram() for d in Direction}
        self.deadline_misses = dict.fromkeys(Direction, 0)
        self.frames = dict.fromkeys(Direction, 0)
        self.loop_lag = LatencyHistogram()
        self.lag_counts = LagCounts()
        self.gc_pauses = {g: LatencyHistogram() for g in (0, 1, 2)}
        self.calls_started = 0
        self.calls_ended = 0

    def observe_loop_lag(self, lag_s: float) -> None:
        self.loop_lag.record(lag_s)
        self.lag_counts.observe(lag_s)
        self.metrics.loop_lag.observe(lag_s)

    def observe_gc_pause(self, generation: int, pause_s: float) -> None:
        self.gc_pauses[generation].record(pause_s)
        self.metrics.gc_pause.labels(generation=str(generation)).observe(pause_s)

    def observe(self, items: list[Outgoing], now: float) -> None:
        for item in items:
            if item.direction is not None:
                waited = now - item.ingress
                missed = waited > DEADLINE_S
                for _ in range(item.frames):
                    self.latency[item.direction].record(waited)
                    self.metrics.frame(item.direction, waited, missed)
                self.frames[item.direction] += item.frames
                self.deadline_misses[item.direction] += missed * item.frames

    def to_dict(self, live: int) -> dict[str, Any]:
        out: dict[str, Any] = {"calls_live": live, "calls_started": self.calls_started,
                               "calls_ended": self.calls_ended}
        for d in Direction:
            s = self.latency[d].summary()
            out[d.value] = {"frames": self.frames[d], "deadline_misses": self.deadline_misses[d],
                            "bridge_latency_ms": {"p50": s.p50_ms, "p99": s.p99_ms, "max": s.max_ms}}
        lag = self.loop_lag.summary()
        out["event_loop_lag_ms"] = {"p50": lag.p50_ms, "p99": lag.p99_ms, "max": lag.max_ms}
        out["gc_pause_ms"] = {}
        for g, h in self.gc_pauses.items():
            s = h.summary()
            out["gc_pause_ms"][str(g)] = {"collections": s.count, "total": s.count * s.mean_ms, "p99": s.p99_ms,
                                          "max": s.max_ms}
        return out
