"""How long Python's cyclic garbage collector holds the process, per collection.

A collection runs under the GIL, so for its duration no call's audio moves. The lag timer sees
such a pause only if it falls on one of its ticks; timing each collection through
``gc.callbacks`` gives the pause itself, by generation (2 = a full pass over every tracked object).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


class GcPauseWatch:
    """A ``gc.callbacks`` entry reporting ``observe(generation, seconds)`` after each collection."""

    def __init__(self, observe: Callable[[int, float], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._observe = observe
        self._clock = clock
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        # collections never nest and hold the GIL throughout: one start time is enough
        if phase == "start":
            self._started = self._clock()
        else:
            self._observe(int(info["generation"]), self._clock() - self._started)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
