"""How late the event loop runs what is ready: the one measure of a bridge's saturation that
per-frame stamps cannot give.

A frame is stamped when the loop reads it, so time it spent waiting in the socket while the loop
was busy with other calls never shows in the bridge-added latency. A timer that asks to wake every
``period_s`` and notes how late it woke sees exactly that wait (as Node's ``monitorEventLoopDelay``
does). Under 1 ms is an idle loop; tens of ms mean audio is being held before the bridge sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PERIOD_S = 0.010


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
