"""Prometheus metrics of a bridge process (prometheus_client), served at ``GET /metrics``.

Label cardinality stays bounded: tenant and direction, end reason and bad-input kind (fixed sets
in the code), never a call id. Per-call figures are observed once, when the call's report is made;
per-frame latency is observed as frames are sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bridge.events import Direction

MOS_BUCKETS = (1.0, 2.0, 2.5, 3.0, 3.3, 3.6, 3.8, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5)
JITTER_MS_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 200)
LOSS_PCT_BUCKETS = (0.1, 0.5, 1, 2, 3, 5, 10, 20, 50)
LATENCY_S_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
# Report counters that are bad input or peer trouble (the rest count normal events).
PROBLEM_COUNTERS = frozenset({
    "oversize", "bad_json", "bad_message", "bad_base64", "bad_frame", "media_before_start", "wrong_track",
    "unknown_twilio_event", "duplicate_start", "duplicate_frames", "too_late_frames", "reordered_frames",
    "ai_bad_event", "ai_bad_base64", "ai_bad_audio", "ai_errors", "ai_disconnects", "ai_format_mismatch",
    "ai_stalls", "internal_errors", "marks_unknown", "frames_while_ai_down",
})


class BridgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls_live = Gauge("mosbridge_calls_live", "Calls in progress", registry=r)
        self.calls = Counter("mosbridge_calls", "Calls ended", ["tenant", "end_reason"], registry=r)
        self.mos = Histogram("mosbridge_call_mos", "Call MOS (the caller's listening direction)", ["tenant"],
                             buckets=MOS_BUCKETS, registry=r)
        self.jitter = Histogram("mosbridge_call_jitter_ms", "Inbound RFC 3550 jitter per call, ms", ["tenant"],
                                buckets=JITTER_MS_BUCKETS, registry=r)
        self.loss = Histogram("mosbridge_call_loss_pct", "Inbound packet loss per call, %", ["tenant"],
                              buckets=LOSS_PCT_BUCKETS, registry=r)
        self.latency = Histogram("mosbridge_bridge_latency_seconds", "Bridge-added latency per frame",
                                 ["direction"], buckets=LATENCY_S_BUCKETS, registry=r)
        self.deadline_misses = Counter("mosbridge_deadline_misses", "Frames forwarded over 20 ms after arrival",
                                       ["direction"], registry=r)
        self.problems = Counter("mosbridge_problems", "Bad input and peer trouble, by kind", ["kind"], registry=r)
        self._latency = {d: self.latency.labels(d.value) for d in Direction}
        self._misses = {d: self.deadline_misses.labels(d.value) for d in Direction}

    def frame(self, direction: Direction, waited_s: float, missed: bool) -> None:
        self._latency[direction].observe(waited_s)
        if missed:
            self._misses[direction].inc()

    def call_ended(self, report: Mapping[str, Any]) -> None:
        tenant = str(report.get("tenant") or "unknown")
        reason = str(report.get("end_reason") or "unknown").split(":", 1)[0]
        self.calls.labels(tenant, reason).inc()
        self.mos.labels(tenant).observe(float(report["mos"]))
        inbound = report.get("inbound") or {}
        if inbound.get("jitter_ms") is not None:
            self.jitter.labels(tenant).observe(float(inbound["jitter_ms"]))
        self.loss.labels(tenant).observe(float(inbound.get("loss_pct") or 0.0))
        for kind, n in (report.get("counters") or {}).items():
            if kind in PROBLEM_COUNTERS and n:
                self.problems.labels(kind).inc(n)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
