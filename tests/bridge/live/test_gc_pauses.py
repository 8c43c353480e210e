"""Each garbage collection is timed, by generation, from gc.callbacks."""

from __future__ import annotations

import gc
from itertools import count

from bridge.live.gc_pauses import GcPauseWatch


def test_every_collection_is_timed_by_its_generation_and_removal_stops_it() -> None:
    ticks = count()
    seen: list[tuple[int, float]] = []
    watch = GcPauseWatch(lambda g, s: seen.append((g, s)), clock=lambda: next(ticks) * 0.001)
    gc.disable()  # only the collections asked for below
    watch.install()
    watch.install()  # once only
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        watch.remove()
        gc.enable()
    assert seen == [(0, 0.001), (2, 0.001)]  # stop minus start on the injected clock, 1 ms each
    gc.collect()
    assert len(seen) == 2 and watch not in gc.callbacks


def test_the_gc_callback_only_notes_a_pause_and_the_flush_records_it() -> None:
    """A collection can start while this thread holds prometheus_client's multiprocess lock (a
    worker writing a metric's file), so the callback must not call into prometheus_client: a worker
    hung that way at SIGTERM (test_workers, about one run in eight under load). It notes; the flush
    records, into /stats' histogram and the Prometheus series."""

    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the gc callback reached the metrics ({name})")

    from bridge.live.metrics import BridgeMetrics
    from bridge.live.stats import BridgeStats

    stats = BridgeStats(Untouchable())  # type: ignore[arg-type]
    stats.observe_gc_pause(2, 0.004)
    stats.observe_gc_pause(0, 0.001)
    assert stats.gc_pauses[2].summary().count == 0  # not yet recorded
    stats.metrics = BridgeMetrics()
    registry = stats.metrics.registry
    stats.flush_gc_pauses()
    assert [stats.gc_pauses[g].summary().count for g in (0, 1, 2)] == [1, 0, 1]
    assert registry.get_sample_value("mosbridge_gc_pause_seconds_count", {"generation": "2"}) == 1.0
    assert registry.get_sample_value("mosbridge_gc_pause_seconds_sum", {"generation": "0"}) == 0.001
    stats.flush_gc_pauses()  # each pause once
    assert registry.get_sample_value("mosbridge_gc_pause_seconds_count", {"generation": "2"}) == 1.0
