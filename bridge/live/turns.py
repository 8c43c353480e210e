"""Fair turns for a socket reader that finds messages already buffered.

Such a reader handles them without the event loop running anything else; after ``TURN_S`` of that
it yields, so one peer's burst (a caller's stalled backlog, an AI answer sent faster than real
time) cannot stall every other call in the process. A reader that waited on its socket has already
let the others run, so its turn starts afresh.
"""

from __future__ import annotations

import asyncio
import time

TURN_S = 0.002
RECEIVE_BLOCKED_S = 0.0002  # a receive that took longer than this waited on the socket: others ran


class Turn:
    """One reader's turn: call :meth:`after_receive` with the receive's start and end times."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    async def after_receive(self, before: float, after: float) -> None:
        if after - before > RECEIVE_BLOCKED_S:
            self._start = after
        elif after - self._start > TURN_S:
            await asyncio.sleep(0)
            self._start = time.monotonic()
