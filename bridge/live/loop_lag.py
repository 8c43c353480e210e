"""How late the event loop runs what is ready: the one measure of a bridge's saturation that
per-frame stamps cannot give.

A frame is stamped when the loop reads it, so time it spent waiting in the socket while the loop
was busy with other calls never shows in the bridge-added latency. A timer that asks to wake every
``period_s`` and notes how late it woke sees exactly that wait (as Node's ``monitorEventLoopDelay``
does). Under 1 ms is an idle loop; tens of ms mean audio is being held before the bridge sees it.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Sequence

from quality.lag import LAG_BOUNDS_S

PERIOD_S = 0.010


class LagCounts:
    """Ticks per lag bucket since the process started. A call snapshots them when it starts; the
    difference at any later moment is the loop lag that call lived through."""

    def __init__(self) -> None:
        self._counts = [0] * len(LAG_BOUNDS_S)

    def observe(self, lag_s: float) -> None:
        self._counts[bisect.bisect_left(LAG_BOUNDS_S, lag_s)] += 1

    def snapshot(self) -> tuple[int, ...]:
        return tuple(self._counts)

    def cumulative_since(self, start: Sequence[int]) -> list[int]:
        """Cumulative (``le``) counts of the ticks observed after ``start`` was taken."""
        out, running = [], 0
        for now, then in zip(self._counts, start, strict=True):
            running += now - then
            out.append(running)
        return out


async def watch_loop_lag(record: Callable[[float], None], period_s: float = PERIOD_S,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Record, every ``period_s``, how many seconds after its due time the loop woke this task.
    Runs until cancelled."""
    due = clock() + period_s
    while True:
        await asyncio.sleep(max(0.0, due - clock()))
        now = clock()
        record(max(0.0, now - due))
        due = now + period_s
