"""One timer that sends the frames of many simulated Twilio callers at their scheduled times.

A caller that sleeps a task per 20 ms frame costs the load rig a timer, a future and a task step
per frame: at a few hundred calls that was more than the bridge under test spent on the same
frames, so the rig, not the bridge, set the latency the callers saw. The pacer keeps every stream
in one heap, wakes once per instant that has frames due (or due within ``slack_s``, so streams a
fraction of a millisecond apart share a wake), and writes each frame at once (``TextWriter``),
stamping it as it is written. A stream whose socket is not ready to take a frame without waiting
(flow control) tries again ``retry_s`` later: the frame is late, as a real sender's would be.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Protocol

import aiohttp

from bridge.live.aiohttp_internals import TextWriter


class Writer(Protocol):
    def ready(self) -> bool: ...

    def write(self, text: str) -> None: ...


def writer_for(ws: aiohttp.ClientWebSocketResponse) -> Writer:
    """A writer for the pacer: aiohttp's framing write (``TextWriter``), or, if this aiohttp lacks
    what it needs, ``send_str`` in a task per message (tasks start in order, so frames keep it)."""
    text = TextWriter(ws)
    return text if text.usable else _TaskWriter(ws)


class _TaskWriter:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._tasks: set[asyncio.Task[None]] = set()

    def ready(self) -> bool:
        return True

    def write(self, text: str) -> None:
        task = asyncio.ensure_future(self._ws.send_str(text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class PacedStream:
    """One caller's frames: ``text(i)`` builds frame ``i`` and ``due[i]`` is when to send it (on
    the loop's clock); ``on_sent(i)`` runs just before frame ``i`` is written. ``done`` resolves
    when the last frame has gone, or when the socket closed (the rest are not sent)."""

    def __init__(self, writer: Writer, due: Sequence[float], text: Callable[[int], str],
                 on_sent: Callable[[int], None], closed: Callable[[], bool]) -> None:
        self.writer = writer
        self.due = due
        self.text = text
        self.on_sent = on_sent
        self.closed = closed
        self.next = 0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(self.next)


class FramePacer:
    """Sends every added stream's frames from one timer on the running loop."""

    def __init__(self, slack_s: float = 0.0005, retry_s: float = 0.001) -> None:
        self.slack_s = slack_s
        self.retry_s = retry_s
        self.wakes = 0  # timer wakes so far
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, stream: PacedStream) -> None:
        if not stream.due:
            stream.finish()
            return
        self._push(stream.due[0], stream)

    def _push(self, at: float, stream: PacedStream) -> None:
        heapq.heappush(self._heap, (at, next(self._order), stream))
        if self._timer is None or at < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            self._timer_at = self._heap[0][0]
            self._timer = asyncio.get_running_loop().call_at(self._timer_at, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self.wakes += 1
        loop = asyncio.get_running_loop()
        heap = self._heap
        until = loop.time() + self.slack_s
        while heap and heap[0][0] <= until:
            _, _, stream = heapq.heappop(heap)
            again = self._send(stream, loop.time())
            if again is not None:
                heapq.heappush(heap, (again, next(self._order), stream))
        self._arm()

    def _send(self, stream: PacedStream, now: float) -> float | None:
        """Write the stream's next frame; when to come back to it (None: it is finished)."""
        if stream.closed():
            stream.finish()
            return None
        if not stream.writer.ready():
            return now + self.retry_s
        i = stream.next
        stream.on_sent(i)
        try:
            stream.writer.write(stream.text(i))
        except ConnectionError:  # the bridge hung up: nothing more to say
            stream.finish()
            return None
        stream.next = i + 1
        if stream.next >= len(stream.due):
            stream.finish()
            return None
        return stream.due[stream.next]
