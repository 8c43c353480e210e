"""Prometheus metrics of a bridge process (prometheus_client), served at ``GET /metrics``.

Label cardinality stays bounded: direction, end reason, bad-input kind and write result are fixed
sets in the code, a call id is never a label, and tenants are capped: the first ``max_tenants``
distinct tenants get their own label value, later ones are all counted as ``tenant="other"`` (each
call so recorded increments ``mosbridge_tenant_label_overflow_total``), a call without a tenant is
``tenant="unknown"``. Per-call figures are observed once, when the call's report is made;
per-frame latency is counted into the histogram's buckets as frames are sent and added to the
series before each scrape and each second (``flush_frames``). The rules in ``deploy/prometheus/``
are written against these names, and a test checks that every series they use is exported here.

With ``serve --workers N`` every worker process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen by the supervisor
before a worker imports prometheus_client), and any worker's ``/metrics`` adds up all of them:
counters and histograms sum over every worker that ever ran, each gauge as its
``multiprocess_mode`` says (live workers only).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from bridge import __version__
from bridge.core.call import DEADLINE_S
from bridge.core.counters import Count
from bridge.core.events import Direction
from bridge.core.report_json import StoredReport
from bridge.core.tags import UNTAGGED
from quality.lag import LAG_BOUNDS_S

MOS_BUCKETS = (1.0, 2.0, 2.5, 3.0, 3.3, 3.6, 3.8, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5)
JITTER_MS_BUCKETS = (1, 2, 5, 10, 20, 30, 50, 75, 100, 200)
LOSS_PCT_BUCKETS = (0.1, 0.5, 1, 2, 3, 5, 10, 20, 50)
LATENCY_S_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
GC_PAUSE_S_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
LOOP_LAG_S_BUCKETS = LAG_BOUNDS_S[:-1]  # the per-call lag figures read the same buckets
# Report counters that are bad input or peer trouble (the rest count normal events).
PROBLEM_COUNTERS: frozenset[Count] = frozenset(Count(k) for k in (
    "oversize", "bad_json", "bad_message", "bad_base64", "ai_bad_base64", "bad_frame", "media_before_start",
    "wrong_track", "unknown_twilio_event",
    "duplicate_start", "duplicate_frames", "too_late_frames", "reordered_frames", "ai_bad_event", "ai_bad_audio",
    "ai_errors", "ai_disconnects", "ai_format_mismatch", "ai_stalls", "internal_errors", "marks_unknown",
    "frames_while_ai_down", "timestamp_jump", "timestamp_backwards", "report_errors", "media_format", "rate_limited",
    "no_start", "twilio_error", "twilio_unresponsive", "ai_connect_timeouts",
))
WRITE_RESULTS = ("ok", "spooled", "failed")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER_TENANT = "other"


class TenantLabels:
    """Maps tenants to label values with a cap on how many distinct values exist.

    The first ``max_tenants`` distinct tenants keep their name; any later one maps to ``"other"``
    for the life of the process, so a tenant's series never moves between labels. ``"unknown"``
    (no tenant) and ``"other"`` are always available and do not use up the cap.
    """

    def __init__(self, max_tenants: int) -> None:
        if max_tenants < 1:
            raise ValueError("max_tenants must be at least 1")
        self.max_tenants = max_tenants
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def label(self, tenant: object) -> tuple[str, bool]:
        """The label value for ``tenant`` and whether it overflowed the cap."""
        name = str(tenant) if tenant else UNTAGGED
        if name in (UNTAGGED, OTHER_TENANT):
            return name, False
        with self._lock:
            if name in self._known:
                return name, False
            if len(self._known) < self.max_tenants:
                self._known.add(name)
                return name, False
        return OTHER_TENANT, True

    def __len__(self) -> int:
        return len(self._known)


class BridgeMetrics:
    """Every metric one bridge process exports, in its own registry.

    ``call_ended`` and ``frame`` are fed by the server; ``set_spool_depth`` and ``report_write`` by
    the report store; ``set_alert`` by the in-process alert evaluator. All methods are safe to call
    from any thread (prometheus_client's metrics lock internally, the tenant map has its own lock).
    """

    def __init__(self, max_tenants: int = 200, *, multiprocess: bool = False) -> None:
        self.tenants = TenantLabels(max_tenants)
        self.registry = CollectorRegistry()
        self._exposed = self.registry
        if multiprocess:
            # Values go to files whatever registry a metric is in; /metrics reads every worker's.
            if not os.environ.get(MULTIPROC_ENV):
                raise RuntimeError(f"multiprocess metrics need {MULTIPROC_ENV} set before prometheus_client is "
                                   "imported")
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed)  # type: ignore[no-untyped-call]
        r = self.registry
        self.calls_live = Gauge("mosbridge_calls_live", "Calls in progress", registry=r, multiprocess_mode="livesum")
        self.calls = Counter("mosbridge_calls", "Calls ended", ["tenant", "end_reason"], registry=r)
        self.mos = Histogram("mosbridge_call_mos", "Call MOS (the caller's listening direction)", ["tenant"],
                             buckets=MOS_BUCKETS, registry=r)
        self.jitter = Histogram("mosbridge_call_jitter_ms", "Inbound jitter per call: mean of RFC 3550 J, ms",
                                ["tenant"], buckets=JITTER_MS_BUCKETS, registry=r)
        self.loss = Histogram("mosbridge_call_loss_pct", "Inbound loss per call (media clock), %", ["tenant"],
                              buckets=LOSS_PCT_BUCKETS, registry=r)
        self.latency = Histogram("mosbridge_bridge_latency_seconds", "Bridge-added latency per frame",
                                 ["direction"], buckets=LATENCY_S_BUCKETS, registry=r)
        self.deadline_misses = Counter("mosbridge_deadline_misses", "Frames forwarded over 20 ms after arrival",
                                       ["direction"], registry=r)
        self.loop_lag = Histogram("mosbridge_event_loop_lag_seconds",
                                  "How late the event loop woke a 10 ms timer: time ready audio waited unread",
                                  buckets=LOOP_LAG_S_BUCKETS, registry=r)
        self.gc_pause = Histogram("mosbridge_gc_pause_seconds",
                                  "How long one cyclic garbage collection held the process (2 = full)",
                                  ["generation"], buckets=GC_PAUSE_S_BUCKETS, registry=r)
        for generation in ("0", "1", "2"):
            self.gc_pause.labels(generation=generation)
        self.refused = Counter("mosbridge_calls_refused", "New calls refused while the process was full, by route "
                               "(twiml, media) and reason (max_calls, loop_lag, draining)", ["route", "reason"],
                               registry=r)
        self.ready = Gauge("mosbridge_ready", "1 while the process takes new calls, 0 while full or draining",
                           registry=r, multiprocess_mode="livemin")  # with workers: 1 while every worker does
        self.problems = Counter("mosbridge_problems", "Bad input and peer trouble, by kind", ["kind"], registry=r)
        self.tenant_overflow = Counter(
            "mosbridge_tenant_label_overflow",
            "Calls recorded as tenant=\"other\" because the tenant label cap was reached", registry=r)
        self.tenant_labels = Gauge("mosbridge_tenant_labels", "Distinct tenants with a label of their own",
                                   registry=r, multiprocess_mode="livemax")
        self.spool_depth = Gauge("mosbridge_report_spool_depth",
                                 "Call reports waiting on local disk for the database", registry=r,
                                 multiprocess_mode="livesum")
        self.report_writes = Counter("mosbridge_report_writes", "Call report writes, by result (ok, spooled, failed)",
                                     ["result"], registry=r)
        self.alert_firing = Gauge("mosbridge_alert_firing",
                                  "1 while the in-process tenant MOS alert fires for the tenant", ["tenant"],
                                  registry=r, multiprocess_mode="livemax")
        self.build_info = Gauge("mosbridge_build_info", "Always 1; the bridge's version as a label", ["version"],
                                registry=r, multiprocess_mode="livemax")
        self.build_info.labels(__version__).set(1)
        # Series that exist from the start, so that increase() and rate() see their first change.
        self._latency = {d: self.latency.labels(d.value) for d in Direction}
        self._misses = {d: self.deadline_misses.labels(d.value) for d in Direction}
        # Frames counted since the last flush: per direction, a count per bucket (+Inf last), the
        # sum of the waits and the deadline misses.
        self._frame_counts = {d: [0] * (len(LATENCY_S_BUCKETS) + 1) for d in Direction}
        self._frame_sums = dict.fromkeys(Direction, 0.0)
        self._frame_misses = dict.fromkeys(Direction, 0)
        self._problems = {k: self.problems.labels(k) for k in sorted(PROBLEM_COUNTERS)}
        self._writes = {res: self.report_writes.labels(res) for res in WRITE_RESULTS}
        self._other_firing: set[str] = set()
        self._alert_lock = threading.Lock()

    def tenant_label(self, tenant: object) -> str:
        """The label value a tenant is recorded under (its name, "unknown", or "other" past the cap)."""
        label, _ = self._tenant(tenant)
        return label

    def _tenant(self, tenant: object) -> tuple[str, bool]:
        label, overflow = self.tenants.label(tenant)
        if not overflow:
            self.tenant_labels.set(len(self.tenants))
        return label, overflow

    def frames(self, direction: Direction, waits_s: Iterable[float]) -> None:
        """Frames sent these waits after they arrived, one value a 20 ms frame; a wait over
        ``DEADLINE_S`` is a deadline miss. Counted here and added to the series by
        ``flush_frames``: an ``observe`` per frame cost 2-3 % of the bridge's CPU (a locked write
        per frame, to an mmap with workers), so each call's latency histogram hands its values
        on as it buckets them (``BridgeStats.track``). Event-loop thread only, like ``flush_frames``."""
        counts = self._frame_counts[direction]
        total, missed = 0.0, 0
        for waited in waits_s:
            counts[bisect_left(LATENCY_S_BUCKETS, waited)] += 1
            total += waited
            if waited > DEADLINE_S:
                missed += 1
        self._frame_sums[direction] += total
        self._frame_misses[direction] += missed

    def flush_frames(self) -> None:
        """Add the frames counted since the last flush to their series. A Histogram's bucket
        ``le=b`` counts values <= b, as ``bisect_left`` over the bounds does; prometheus_client has
        no batch observe, so this adds to the child's bucket values directly."""
        for d in Direction:
            counts = self._frame_counts[d]
            if not any(counts):
                continue
            child = self._latency[d]
            for i, n in enumerate(counts):
                if n:
                    child._buckets[i].inc(n)
                    counts[i] = 0
            child._sum.inc(self._frame_sums[d])
            self._frame_sums[d] = 0.0
            if self._frame_misses[d]:
                self._misses[d].inc(self._frame_misses[d])
                self._frame_misses[d] = 0

    def call_ended(self, report: StoredReport) -> None:
        tenant, overflow = self._tenant(report.get("tenant"))
        if overflow:
            self.tenant_overflow.inc()
        reason = str(report.get("end_reason") or "unknown").split(":", 1)[0]
        self.calls.labels(tenant, reason).inc()
        mos = report.get("mos")
        if mos is not None:  # a fallback report (see bridge.core.report.fallback_report) has none
            self.mos.labels(tenant).observe(float(mos))
        inbound = report.get("inbound") or {}
        if inbound.get("jitter_ms") is not None:
            self.jitter.labels(tenant).observe(float(inbound["jitter_ms"]))
        self.loss.labels(tenant).observe(float(inbound.get("loss_pct") or 0.0))
        for kind, n in (report.get("counters") or {}).items():
            if kind in PROBLEM_COUNTERS and n:
                self._problems[Count(kind)].inc(n)

    def set_spool_depth(self, n: int) -> None:
        """Reports currently waiting in the local spool because the database could not take them."""
        self.spool_depth.set(max(0, n))

    def report_write(self, result: str) -> None:
        """One report write: "ok" (stored), "spooled" (kept on local disk for later) or "failed" (neither)."""
        if result not in self._writes:
            raise ValueError(f"report_write result must be one of {WRITE_RESULTS}, not {result!r}")
        self._writes[result].inc()

    def set_alert(self, tenant: str, firing: bool) -> None:
        """The in-process evaluator's state for a tenant. Tenants past the cap share "other", which
        reads 1 while any of them fires."""
        label, overflow = self._tenant(tenant)
        if overflow:
            with self._alert_lock:
                if firing:
                    self._other_firing.add(str(tenant))
                else:
                    self._other_firing.discard(str(tenant))
                self.alert_firing.labels(OTHER_TENANT).set(1 if self._other_firing else 0)
            return
        self.alert_firing.labels(label).set(1 if firing else 0)

    def exposition(self) -> bytes:
        """The text format of every series: this process's, or with workers, all workers' added up
        (each worker flushes its frames every second)."""
        self.flush_frames()
        return generate_latest(self._exposed)
