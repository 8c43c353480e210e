"""The aiohttp internals the bridge uses, in one place; ``tests/bridge/live/test_arrival.py`` and
``test_handoff.py`` fail loudly if an aiohttp upgrade removes any of them.

1. When a Twilio (or Realtime) message reached the bridge, as close to the socket as asyncio lets
   us see.

The call's task reads a message only when the loop gets to it: with many calls, after every other
call's task that became ready in the same loop iteration. Stamping there turns the bridge's own
queueing into jitter and late discards in the report. aiohttp hands each chunk read from the socket
to the WebSocket parser after calling the connection's ``_data_received_cb`` (the hook its
heartbeat uses); stamping in that hook dates a message by the chunk that completed it.

The time data waits in the kernel before the loop polls it is still unseen: only kernel receive
timestamps (``SO_TIMESTAMPING``), which asyncio's transports do not expose, would show it.

2. A text message written at once (:class:`TextWriter`). ``send_str`` is three coroutines deep
(``send_str``, the writer's ``send_frame``, the caller's own) before it reaches the one synchronous
call that frames and writes the message, and it only ever waits when compression or flow control
asks it to. The bridge pays that wrapping per caller frame, so it calls the framing write itself
when neither applies, and ``send_str`` otherwise. Several messages due at once (a chunk of AI
audio and its mark) are framed by that same call and written together: one system call, not one
a message.

3. A Twilio message handled as it is parsed (:class:`HandoffWebSocket`). ``receive`` hands each
message to the call's task through a queue: a future resolved, the task scheduled, a task step and
two coroutines resumed, per caller frame. The bridge gives aiohttp's parser a queue that first
offers each message to the driver, which handles it in the read callback itself while its task
waits idle (``CallDriver._take_now``), and leaves the rest to ``receive``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import WSMessage, WSMsgType, web

try:  # where aiohttp 3.11 to 3.14 keep it; without it every message reaches the task through receive()
    from aiohttp._websocket.reader import WebSocketDataQueue as _Queue
    from aiohttp._websocket.reader import WebSocketReader as _Reader
except ImportError:  # pragma: no cover
    _Queue, _Reader = object, None  # type: ignore[assignment]

if TYPE_CHECKING:
    from aiohttp._websocket.models import WSMessageTextBytes

log = logging.getLogger("mosbridge")

_MISSING = object()


class ArrivalClock:
    """The monotonic time of the latest chunk aiohttp read on one connection."""

    def __init__(self, protocol: object, clock: Callable[[], float] = time.monotonic) -> None:
        self.last: float | None = None
        self._clock = clock
        previous = getattr(protocol, "_data_received_cb", _MISSING)
        self.hooked = previous is not _MISSING
        if not self.hooked:
            log.warning("aiohttp has no _data_received_cb on %s: messages are stamped when read",
                        type(protocol).__name__)
            return
        chained: Callable[[], None] | None = previous if callable(previous) else None

        def on_data() -> None:
            self.last = clock()
            if chained is not None:
                chained()

        protocol._data_received_cb = on_data  # type: ignore[attr-defined]

    def stamp(self, now: float | None = None) -> float:
        """When the message just read arrived: the latest chunk's time. A message completed by
        an earlier chunk gets a later time than its own, never an earlier one, and never later
        than ``now`` (the clock's time unless the reader just read it)."""
        if now is None:
            now = self._clock()
        return now if self.last is None else min(self.last, now)


def client_protocol(ws: object) -> object:
    """The connection protocol under a client WebSocket (``aiohttp.ClientWebSocketResponse``), whose
    ``_data_received_cb`` :class:`ArrivalClock` hooks; None if this aiohttp keeps it elsewhere."""
    return getattr(getattr(ws, "_writer", None), "protocol", None)


class TextWriter:
    """Writes text messages on one WebSocket (client or server, once prepared) without a coroutine,
    as aiohttp's ``send_frame`` does for an uncompressed frame when it will not wait: the frame goes
    to the transport (masked on a client), and the writer's flow-control count is kept as it keeps it.
    Call :meth:`write` only when :meth:`ready`; otherwise aiohttp would wait or compress, and the
    caller awaits ``send_str``.
    """

    __slots__ = ("_writer",)

    def __init__(self, ws: object) -> None:
        writer = getattr(ws, "_writer", None)
        usable = all(hasattr(writer, a) for a in ("_write_websocket_frame", "_output_size", "_limit", "compress",
                                                  "_closing", "transport")) \
            and hasattr(getattr(writer, "protocol", None), "_paused")
        if writer is not None and not usable:
            log.warning("aiohttp's WebSocketWriter has changed: every message is sent with send_str")
        self._writer = writer if usable else None

    @property
    def usable(self) -> bool:
        """This aiohttp has what :meth:`write` needs (otherwise :meth:`ready` is always False)."""
        return self._writer is not None

    def ready(self) -> bool:
        """A message written now goes out as ``send_str`` would send it, without waiting: no
        compression, the writer not closing, the transport not paused."""
        w = self._writer
        return w is not None and not w.compress and not w._closing and not w.protocol._paused

    def write(self, text: str) -> None:
        """Frame and write ``text``. Raises ``ConnectionError`` (as ``send_str`` does) when the
        transport is closing. A write that fills the transport past its limit pauses it, which the
        next :meth:`ready` sees."""
        w = self._writer
        assert w is not None
        w._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
        if w._output_size > w._limit:
            w._output_size = 0  # as send_frame does before it waits for a paused transport

    def write_if_ready(self, text: str) -> bool:
        """:meth:`write` if :meth:`ready`, in one call (a caller frame's path); False, with nothing
        written, if not. Raises ``ConnectionError`` as :meth:`write` does."""
        w = self._writer
        if w is None or w.compress or w._closing or w.protocol._paused:
            return False
        w._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
        if w._output_size > w._limit:
            w._output_size = 0
        return True

    def write_all(self, texts: Sequence[str]) -> None:
        """Frame each of ``texts`` as :meth:`write` does and write them in one ``writelines`` (one
        ``writev`` on uvloop): the messages go out in order, as one segment on the wire."""
        if len(texts) == 1:
            self.write(texts[0])
            return
        w = self._writer
        assert w is not None
        transport = w.transport
        frames = _Frames(transport)
        w.transport = frames  # aiohttp's framing (and a client's masking) writes into the list
        try:
            for text in texts:
                w._write_websocket_frame(text.encode(), WSMsgType.TEXT, 0)
        finally:
            w.transport = transport
        transport.writelines(frames.parts)
        if w._output_size > w._limit:
            w._output_size = 0


class _Frames:
    """Stands in for the transport while :meth:`TextWriter.write_all` frames: collects the bytes."""

    __slots__ = ("_transport", "parts")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.parts: list[bytes] = []

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class HandoffQueue(_Queue):
    """aiohttp's queue of parsed messages, which first offers each one to :attr:`take` while nothing
    waits in it: a message ``take`` accepts is not queued, so the reader's task is not woken for it.
    What it declines, and everything after while anything is queued, goes in the queue in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.take: Callable[[WSMessage | WSMessageTextBytes], bool] | None = None

    def feed_data(self, data: WSMessage | WSMessageTextBytes, size: int) -> None:
        take = self.take
        if take is None or self._buffer or not take(data):
            super().feed_data(data, size)

    def hand_over(self, marker: WSMessage) -> None:
        """Queue ``marker`` for ``receive``, waking the reader's task to finish what ``take`` began."""
        super().feed_data(marker, 0)


class HandoffWebSocket(web.WebSocketResponse):
    """A server WebSocket whose messages go through a :class:`HandoffQueue` (:attr:`handoff`). It is
    None, with aiohttp's own queue kept, if the upgrade came with bytes past it (aiohttp has parsed
    them already) or this aiohttp is laid out differently (logged once)."""

    handoff: HandoffQueue | None = None
    _warned = False  # once a process

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        early = getattr(request.protocol, "_message_tail", b"")
        super()._post_start(request, protocol, writer)
        if early:
            return
        try:
            if _Reader is None:
                raise AttributeError("no aiohttp._websocket.reader")
            conn = request.protocol
            if conn._payload_parser is not self._parser:
                raise AttributeError("the connection's parser is not the response's")
            queue = HandoffQueue(request._protocol, self._reader._limit // 2,  # type: ignore[union-attr]
                                 loop=self._loop)
            parser = _Reader(queue, self._max_msg_size, compress=bool(self._compress), decode_text=self._decode_text)
        except (AttributeError, TypeError) as exc:
            if not HandoffWebSocket._warned:
                HandoffWebSocket._warned = True
                log.warning("aiohttp's WebSocket reader has changed (%s): every Twilio message wakes its "
                            "call's task", exc)
            return
        conn._payload_parser = parser  # nothing has reached the old one: no bytes came before this
        self._parser = parser
        self._reader = queue
        self.handoff = queue
