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
