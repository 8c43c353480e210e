"""One live call: the driver that feeds a :class:`~bridge.core.call.CallCore` from its two sockets.

Four tasks per call: the Twilio reader (the handler's own task), the AI session loop (one AI leg
after another, opened once ``start`` came: ``bridge/live/ai_legs.py``), the AI writer, and a clock
for the core's timer and the pings. While the Twilio reader's task waits, a message is handled in
aiohttp's read callback instead, without waking it (``_take_now``). Every input is recorded (when
the call is captured) and applied through ``bridge/core/inputs.py``, so replay gets the same
report. Time is ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import WSMessage, WSMsgType, web

from bridge.core.call import CallCore
from bridge.core.counters import Count
from bridge.core.events import CallEnded, CallStarted, Direction, Event, Outgoing, Peer, Problem, ReconnectRealtime
from bridge.core.inputs import (
    AiClosed,
    AiConnected,
    AiIn,
    AiRtt,
    End,
    HostLag,
    Input,
    Timer,
    TwilioClosed,
    TwilioIn,
    TwilioRtt,
    apply,
    capture_fields,
)
from bridge.core.isotime import iso_utc
from bridge.live.ai_legs import AiConnectFailed, AiLeg, Pong
from bridge.live.aiohttp_internals import ArrivalClock, HandoffQueue, TextWriter
from bridge.live.logs import bind_call
from bridge.live.recorder import CallCapture
from bridge.live.turns import TURN_S, Turn

if TYPE_CHECKING:
    from aiohttp._websocket.models import WSMessageTextBytes

    from bridge.live.server import Bridge

log = logging.getLogger("mosbridge")
report_log = logging.getLogger("mosbridge.report")

_TEXT, _BINARY = WSMsgType.TEXT, WSMsgType.BINARY
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)
AI_BACKLOG_WARN = 250  # messages (5 s of caller audio) waiting for the AI socket
_HAND_OVER = WSMessage(WSMsgType.TEXT, "", "mosbridge: the reader's task finishes the pass")


def _id(call_sid: str) -> str:
    return call_sid or "call"


def _by_peer(items: list[Outgoing]) -> tuple[list[Outgoing], list[Outgoing]]:
    """The core's output split into what goes to Twilio and what goes to the AI, each in order."""
    to_twilio: list[Outgoing] = []
    to_ai: list[Outgoing] = []
    for item in items:
        (to_twilio if item.peer is Peer.TWILIO else to_ai).append(item)
    return to_twilio, to_ai


class CallDriver:
    """Drives one call's core from its two WebSockets.

    The core is given time relative to the call's start (monotonic seconds), and every
    interaction with it goes through the methods below, which also write the capture when the
    call is recorded: replay makes the same calls with the same floats, so it gets the same report.
    """

    def __init__(self, bridge: Bridge, twilio_ws: web.WebSocketResponse, twilio_protocol: object) -> None:
        self.bridge = bridge
        self.twilio = twilio_ws
        self._twilio_text = TextWriter(twilio_ws)
        self.t0 = time.monotonic()
        self._arrival = ArrivalClock(twilio_protocol)
        self.core = CallCore(bridge.call_config, now=0.0)
        self.wall_start = time.time()
        self.capture: CallCapture | None = (
            bridge.recorder.open_call(iso_utc(self.wall_start)))
        self.leg: AiLeg | None = None
        self._lock = asyncio.Lock()
        self._rearm = asyncio.Event()  # the core wants its timer sooner than the clock sleeps
        self._armed = float("inf")  # when the clock task is due to wake, on the call's clock
        self._ai_queue: deque[Outgoing] = deque()
        self._ai_ready = asyncio.Event()
        self._ai_writing = False  # the writer has a batch in flight: later messages queue behind it
        self._backlog_warned = False
        self._reconnect = asyncio.Event()
        self._started = asyncio.Event()  # ``start`` seen (or the call over): the AI session may open
        self._pings: dict[bytes, tuple[Peer, float]] = {}
        self._ping_count = 0
        self._lag_start = bridge.stats.lag_counts.snapshot()
        self._parked = False  # the Twilio reader's task waits in receive(): _take_now may act for it
        self._failed: Exception | None = None  # what _take_now met, for the reader's task to raise
        self._handoff: HandoffQueue | None = getattr(twilio_ws, "handoff", None)

    def _arrived(self, read_at: float) -> float:
        """When the Twilio message just read (at ``read_at``, monotonic) reached the bridge (see
        ``bridge.live.aiohttp_internals``), on the call's clock; never before the previous one."""
        return self._arrival.stamp(read_at) - self.t0

    def _ai_arrived(self, leg: AiLeg) -> float:
        """When the AI item just yielded reached the bridge, on the call's clock (see ``_arrived``):
        a backlog of AI messages waiting for this call's turn shows as bridge latency."""
        at = leg.arrived()
        return self.now() if at is None else min(at - self.t0, self.now())

    def now(self) -> float:
        # time.monotonic, not loop.time(): uvloop's clock ticks in whole milliseconds, too coarse
        # for per-frame latency stamps of a fraction of a millisecond.
        return time.monotonic() - self.t0

    # -------------------------------------------------------------- core calls (recorded)

    def _apply(self, inp: Input, now: float | None = None) -> float:
        """Record ``inp`` in the capture, then give it to the core (``bridge/core/inputs.py``): replay
        reads the same inputs back. The core guards itself: a bug met by one input is counted,
        not raised. Returns the time it was applied at."""
        now = self.now() if now is None else now
        if self.capture is not None:
            if isinstance(inp, TwilioIn | AiIn):
                self.capture.message(now, inp.DIR, inp.text)
            else:
                self.capture.event(now, inp.DIR, **capture_fields(inp))
        apply(self.core, inp, now)
        return now

    # -------------------------------------------------------------- tasks

    async def run(self) -> None:
        """The call from upgrade to report. Whatever goes wrong on the way, the call ends with its
        report written and both sockets (and the AI session) closed."""
        bind_call(self.core)  # this call's log lines, from every task it starts, name it
        if self._handoff is not None and self._arrival.hooked:  # the turn needs the chunk's read time
            # in this task's context, so the lines it logs name the call too
            self._handoff.take = functools.partial(  # type: ignore[call-arg]  # mypy: partial of a ParamSpec
                contextvars.copy_context().run, self._take_now)
        tasks = [asyncio.create_task(self._ai_loop()), asyncio.create_task(self._clock()),
                 asyncio.create_task(self._ai_writer())]
        try:
            await self._twilio_loop()
        except Exception:
            self.core.counters[Count.INTERNAL_ERRORS] += 1
            log.exception("%s: the Twilio reader failed; ending the call", _id(self.core.call_sid))
        finally:
            try:
                if not self.core.ended:
                    self._apply(TwilioClosed())
                await self.flush()
            except Exception:
                log.exception("%s: error while ending the call", _id(self.core.call_sid))
            if self._handoff is not None:
                self._handoff.take = None  # a message after the reader has gone stays queued
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self._close_sockets()

    async def _close_sockets(self) -> None:
        if self.leg is not None:
            await self.leg.close()
        if not self.twilio.closed:
            with contextlib.suppress(Exception):
                await self.twilio.close()

    async def _twilio_loop(self) -> None:
        ws = self.twilio
        turn = Turn()
        while True:
            before = time.monotonic()
            self._parked = True
            msg = await ws.receive()
            self._parked = False
            read_at = time.monotonic()
            if msg is _HAND_OVER:  # the rest of a pass _take_now began
                if self._failed is not None:
                    raise self._failed
                await self.flush()
                if self.core.ended:
                    return
                continue
            if turn.over(before, read_at):
                await asyncio.sleep(0)
                turn.restart()
                read_at = time.monotonic()
            kind = msg.type
            if kind is _TEXT or kind is _BINARY:
                if not self._twilio_message(msg.data, self._arrived(read_at)):
                    await self._flush_waiting()
                if self.core.ended:
                    return
            elif kind in _CLOSED:
                return
            elif kind is WSMsgType.ERROR:
                # aiohttp closes the socket on a message over its cap or a protocol violation
                self._apply(End(f"twilio_error: {type(msg.data).__name__}: {msg.data}"))
                return
            elif kind is WSMsgType.PING:
                await ws.pong(msg.data)
            elif kind is WSMsgType.PONG:
                self._pong(msg.data, self._arrived(read_at))

    def _twilio_message(self, data: str | bytes, arrived: float) -> bool:
        """A Twilio message applied and what it made sent, without waiting; False if the flush has
        to wait (the caller awaits ``_flush_waiting``). A plain caller frame is written by itself."""
        if self.capture is None:  # nothing to record: what _apply(TwilioIn(...)) does, minus two calls a frame
            append = self.core.take_media(data, arrived)
            if append is not None:  # a caller frame that made nothing else: no flush
                self._frame_to_ai(append, arrived)
                return True
        else:
            self._apply(TwilioIn(data), arrived)
        return not self._lock.locked() and self._flush_now()  # flush(), without its coroutine

    def _take_now(self, msg: WSMessage | WSMessageTextBytes) -> bool:
        """One pass of ``_twilio_loop`` for a message aiohttp has just parsed, run in its read
        callback (in the task's context) while the reader's task waits idle: the task is not woken
        (a future, a task step and two coroutines a frame, 10 % of the bridge's CPU:
        benchmarks/README.md). Declined, with nothing done, for a ping, pong or close, and for a
        message of a chunk read longer than a turn ago (a burst read at once goes by turns). A
        flush that would wait, the call's end and an error are handed to the task, which finishes
        the pass."""
        kind = msg.type
        if not self._parked or (kind is not _TEXT and kind is not _BINARY):
            return False
        read_at = time.monotonic()
        last = self._arrival.last
        if last is not None and read_at - last > TURN_S:
            return False
        try:
            if self._twilio_message(msg.data, self._arrived(read_at)) and not self.core.ended:
                return True
        except Exception as exc:
            self._failed = exc
        self._handoff.hand_over(_HAND_OVER)  # type: ignore[union-attr]
        return True

    async def _ai_loop(self) -> None:
        """One AI session after another until the call ends: the core decides whether to reconnect,
        this waits a growing, jittered backoff before each attempt in a row (a restarting AI
        service is not hammered, and a call rides out a restart of a few seconds). The first
        session opens once ``start`` has come: a socket that never starts opens none."""
        await self._started.wait()
        attempt = 0
        while not self.core.ended:
            self._reconnect.clear()
            opened = time.monotonic()
            reason = await self._ai_session()
            if self.core.ended:
                break
            self._apply(AiClosed(reason))
            await self.flush()
            if self.core.ended:
                break
            await self._reconnect.wait()
            if self.core.ended:
                break
            attempt = 0 if time.monotonic() - opened >= self.bridge.call_config.ai_healthy_s else attempt + 1
            await asyncio.sleep(self.bridge.backoff_s(attempt))

    async def _ai_session(self) -> str:
        """One AI session, whichever leg the call's format takes; returns why it ended."""
        leg = self.bridge.open_ai_leg(self.core)
        self.leg = leg
        try:
            try:
                await leg.connect()
            except AiConnectFailed as exc:
                return str(exc)
            self._apply(AiConnected())
            await self.flush()
            async for item in leg.receive():
                arrived = self._ai_arrived(leg)
                if isinstance(item, Pong):
                    self._pong(item.payload, arrived)
                    continue
                self._apply(item, arrived)
                if self._lock.locked() or not self._flush_now():
                    await self._flush_waiting()
                if self.core.ended:
                    return "call ended"
            return leg.closed_reason
        finally:
            self.leg = None
            await leg.close()

    async def _clock(self) -> None:
        """Fires the core's timer and the pings. The core's deadline is re-read after every
        input (``flush`` re-arms this when an input brought it forward, as aioquic re-arms its
        timer in ``transmit()``), so a stall is seen on time whatever the interval and ping
        periods."""
        period = self.bridge.settings.ping_interval_s
        next_ping = self.now() + period
        while not self.core.ended:
            deadline = self.core.get_timer()
            wake = next_ping if deadline is None else min(deadline, next_ping)
            self._armed = wake
            self._rearm.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rearm.wait(), max(0.0, wake - self.now()))
            if self.core.ended:
                break
            if deadline is not None and self.now() >= deadline:
                self._apply(Timer())
                await self.flush()
            if self.now() >= next_ping:
                next_ping = self.now() + period
                self._record_loop_lag()
                await self._ping()

    def _record_loop_lag(self) -> None:
        counts = self.bridge.stats.lag_counts.cumulative_since(self._lag_start)
        self._apply(HostLag(tuple(counts)))

    async def _ping(self) -> None:
        unanswered = sum(1 for peer, _ in self._pings.values() if peer is Peer.TWILIO)
        limit = self.bridge.settings.twilio_missed_pongs
        if unanswered >= limit and not self.core.ended:
            reason = f"twilio_unresponsive: {unanswered} pings in a row unanswered"
            self._apply(End(reason))
            await self.flush()
            return
        self._ping_count += 1
        payload = self._ping_count.to_bytes(4, "big")
        if not self.twilio.closed:
            self._pings[payload] = (Peer.TWILIO, self.now())
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.twilio.ping(payload)
        leg = self.leg
        if leg is not None:
            self._ping_count += 1
            payload = self._ping_count.to_bytes(4, "big")
            self._pings[payload] = (Peer.REALTIME, self.now())
            if not await leg.ping(payload):
                del self._pings[payload]

    def _pong(self, payload: bytes, arrived: float | None = None) -> None:
        sent = self._pings.pop(bytes(payload), None)
        if sent is not None:
            peer, at = sent
            for key in [k for k, (p, t) in self._pings.items() if p is peer and t <= at]:
                del self._pings[key]  # an answer to a later ping answers the earlier ones too
            rtt_ms = ((self.now() if arrived is None else arrived) - at) * 1000.0
            self._apply(TwilioRtt(rtt_ms) if peer is Peer.TWILIO else AiRtt(rtt_ms))

    # -------------------------------------------------------------- output

    async def flush(self) -> None:
        """Send what the core produced. What it produced for the AI goes out at once while the
        AI socket keeps up; once it pushes back, or a backlog waits, it goes to the AI writer,
        so a slow or congested AI socket never holds back the caller's audio. (Always handing
        over to the writer would put every frame behind every other call's ready work: tens of
        milliseconds at a few hundred calls.) Usually nothing here has to wait, and it all runs
        without an await (:meth:`_flush_now`); otherwise it runs under the lock, in order."""
        if self._lock.locked() or not self._flush_now():
            await self._flush_waiting()

    def _flush_now(self) -> bool:
        """The flush when nothing in it waits: Twilio's socket takes a message at once (or is
        closed) and no ``CallEnded`` is due (it closes the sockets). False, with nothing taken,
        otherwise. This is nearly every flush's path on a healthy call (AI audio and marks, and the
        caller frames ``take_media`` leaves to the general way: other formats, captured calls, the
        frame after a gap), where the general one took the lock and five coroutines a frame (6-12 %
        of the bridge's CPU, benchmarks/README.md)."""
        core = self.core
        if core.ended or not (self._twilio_text.ready() or self.twilio.closed):
            return False
        items = core.data_to_send()
        if len(items) == 1 and items[0].peer is Peer.REALTIME:  # a caller frame the short way left
            self._to_ai(items)
        elif items:
            to_twilio, to_ai = _by_peer(items)
            if to_ai:
                self._to_ai(to_ai)
            if to_twilio:
                if not self.twilio.closed:
                    try:  # noqa: SIM105 -- as in _flush_waiting
                        self._twilio_text.write_all([item.text for item in to_twilio])  # chunks, marks: one write
                    except ConnectionError:
                        pass  # closing: dropped, as the general path drops it
                self._sent(to_twilio, "twilio_out")
        while (event := core.next_event()) is not None:
            self._on_event_now(event)
        self._rearm_if_sooner()
        return True

    async def _flush_waiting(self) -> None:
        async with self._lock:
            to_twilio, to_ai = _by_peer(self.core.data_to_send())
            if to_ai:
                self._to_ai(to_ai)
            for item in to_twilio:
                if not self.twilio.closed:
                    try:  # noqa: SIM105 -- contextlib.suppress costs an object and two calls
                        await self.twilio.send_str(item.text)
                    except (ConnectionError, RuntimeError):
                        pass
            if to_twilio:
                self._sent(to_twilio, "twilio_out")
            while (event := self.core.next_event()) is not None:
                await self._on_event(event)
            self._rearm_if_sooner()

    def _to_ai(self, items: list[Outgoing]) -> None:
        """Caller audio and events for the AI: written now if its socket takes them at once and
        nothing is queued before them, else queued for the AI writer."""
        leg = self.leg
        if self._ai_writing or self._ai_queue or leg is None or not leg.send_now(items):
            self._ai_queue.extend(items)
            self._ai_ready.set()
        else:
            self._sent(items, "ai_out")

    def _frame_to_ai(self, append: str, arrived: float) -> None:
        """A caller frame's append from ``take_media``: what :meth:`_to_ai` and :meth:`_sent` do
        with the one item a flush would hold, without the item."""
        leg = self.leg
        if self._ai_writing or self._ai_queue or leg is None or not leg.send_text_now(append):
            self._ai_queue.append(Outgoing(Peer.REALTIME, append, arrived, Direction.INBOUND))
            self._ai_ready.set()
            return
        self.core.record_frame_sent(self.now() - arrived)

    def _rearm_if_sooner(self) -> None:
        deadline = self.core.get_timer()
        if deadline is not None and deadline < self._armed:
            self._armed = deadline
            self._rearm.set()

    async def _ai_writer(self) -> None:
        while True:
            await self._ai_ready.wait()
            self._ai_ready.clear()
            if len(self._ai_queue) > AI_BACKLOG_WARN and not self._backlog_warned:
                self._backlog_warned = True
                log.warning("%s: %d messages queued for a slow Realtime connection", self.core.call_sid,
                            len(self._ai_queue))
            batch = list(self._ai_queue)
            self._ai_queue.clear()
            self._ai_writing = True
            try:
                await self._send_ai(batch)
            finally:
                self._ai_writing = False

    async def _send_ai(self, batch: list[Outgoing]) -> None:
        if self.leg is not None:
            await self.leg.send(batch)
        self._sent(batch, "ai_out")

    def _sent(self, items: list[Outgoing], direction: str) -> None:
        now = self.now()
        if self.capture is not None:
            for item in items:
                if item.audio is not None:
                    self.capture.event(now, direction, b64=base64.b64encode(item.audio).decode("ascii"))
                else:
                    self.capture.message(now, direction, item.text)
        self.core.record_sent(items, now)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, CallEnded):
            self._on_ended(event)
            self._started.set()
            self._reconnect.set()
            await self._close_sockets()
        else:
            self._on_event_now(event)

    def _on_event_now(self, event: Event) -> None:
        """Every event but ``CallEnded`` (which :meth:`_on_event` handles): nothing here waits."""
        if isinstance(event, Problem):
            log.log(logging.ERROR if event.level == "error" else logging.WARNING, "%s: %s", event.kind,
                    event.detail)
        elif isinstance(event, CallStarted):
            log.info("call started %s tenant=%s tags=%s", event.call_sid, event.tenant, event.tags)
            if self.capture is not None:
                wanted = self.bridge.capture_policy.wants(event.tenant, event.tags)
                self.capture.decide(wanted)
                if not wanted:
                    self.capture = None  # nothing to write: every later frame skips it
            self._started.set()
        elif isinstance(event, ReconnectRealtime):
            self._reconnect.set()

    def _on_ended(self, event: CallEnded) -> None:
        """Hand the report on: the store's writer first (the report must not be lost), then the
        metrics, the log line and the capture, each on its own so one failing cannot stop another."""
        report = event.report.stamped(iso_utc(self.wall_start), iso_utc(self.bridge.clock())).to_json()
        self.bridge.reports_written += 1
        steps: list[tuple[str, Callable[[], None]]] = [
            ("store", lambda: self.bridge.writer.submit(report) if self.bridge.writer is not None else None),
            ("metrics", lambda: self.bridge.metrics.call_ended(report)),
            ("log", lambda: report_log.info(json.dumps(report, sort_keys=True))
             if report_log.isEnabledFor(logging.INFO) else None),  # serializing a report is not free
            ("capture", lambda: self.capture.close(self.core.call_sid) if self.capture is not None else None),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:
                log.exception("%s: the report's %s step failed", _id(self.core.call_sid), name)

    async def end(self, reason: str) -> None:
        """End the call now (shutdown): its report is written before this returns."""
        if not self.core.ended:
            self._apply(End(reason))
        await self.flush()


