"""Fair turns for a socket reader that finds messages already buffered.

Such a reader handles them without the event loop running anything else; after ``TURN_S`` of that
it yields, so one peer's burst (a caller's stalled backlog, an AI answer sent faster than real
time) cannot stall every other call in the process. A reader that waited on its socket has already
let the others run, so its turn starts afresh.
"""

from __future__ import annotations

import time

TURN_S = 0.002
RECEIVE_BLOCKED_S = 0.0002  # a receive that took longer than this waited on the socket: others ran


class Turn:
    """One reader's turn. After each receive: ``if turn.over(before, after): await asyncio.sleep(0);
    turn.restart()`` (a plain check, not a coroutine: it runs once per message)."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.monotonic()

    def over(self, before: float, after: float) -> bool:
        """Whether the reader has run for ``TURN_S`` on buffered messages and must yield, given the
        receive's start and end times."""
        if after - before > RECEIVE_BLOCKED_S:
            self._start = after
            return False
        return after - self._start > TURN_S

    def restart(self) -> None:
        """The reader has yielded: its next turn starts now."""
        self._start = time.monotonic()
