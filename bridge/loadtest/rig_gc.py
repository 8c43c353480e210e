"""The load rig's garbage collector, kept off the callers' clock.

A full collection walks every object the rig holds: each call's planned frames, its callers'
stamps and the stand-in's. At 100 calls one took 84 ms (five in a 20 s run), and every caller
and the stand-in stalled through it at once, which the callers' view would count as the bridge's
latency. During a run young collections go on as usual and full ones wait until it ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_NEVER = 1 << 30
_depth = 0  # runs under way in this process (bench_paired drives two at once)
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def no_full_collections() -> Iterator[None]:
    """Within: what exists at entry is frozen out of collections (``gc.freeze``), and no full
    collection starts; on leaving the last such block, the threshold is restored and one runs."""
    global _depth, _saved
    if _depth == 0:
        _saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(_saved[0], _saved[1], _NEVER)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            gc.collect()
