"""The live driver: an aiohttp server that Twilio's ``<Connect><Stream>`` connects to.

Routes: ``POST /twiml`` (the voice webhook: returns ``<Connect><Stream>``), ``GET /media`` (the
Media Streams WebSocket), ``GET /healthz``, ``GET /readyz``, ``GET /stats`` and ``GET /metrics``.
Each call runs one :class:`~bridge.core.call.CallCore` with four tasks: the Twilio reader (the handler
itself), the AI session loop (one Realtime session after another, opened once ``start`` came),
the AI writer, and a clock for timers and pings. Time is ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import random
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from bridge import __version__
from bridge.core.call import DEADLINE_S, CallCore
from bridge.core.counters import Count
from bridge.core.events import CallEnded, CallStarted, Direction, Event, Outgoing, Peer, Problem, ReconnectRealtime
from bridge.core.inputs import (
    AiClosed,
    AiConnected,
    AiIn,
    AiPacketIn,
    AiRtp,
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
from bridge.live.aiohttp_internals import ArrivalClock, writing_paused
from bridge.live.gc_pauses import GcPauseWatch
from bridge.live.logs import quiet_malformed_requests
from bridge.live.loop_lag import LagCounts, watch_loop_lag
from bridge.live.metrics import BridgeMetrics
from bridge.live.recorder import CallCapture, CapturePolicy, CaptureRecorder
from bridge.live.settings import Settings
from bridge.live.webrtc_leg import WebRtcError, WebRtcLeg
from bridge.live.webrtc_net import restrict_ice_to
from bridge.ops.alerts import AlertEvaluator, AlertNotice
from bridge.ops.api import Api
from bridge.ops.dashboard import add_dashboard_routes
from bridge.ops.store import redact_url
from bridge.ops.store_thread import StoreThread
from bridge.ops.store_writer import ReportWriter
from bridge.ops.webhook import post_json
from quality.alerting import AlertRule
from quality.latency import LatencyHistogram

log = logging.getLogger("mosbridge")
report_log = logging.getLogger("mosbridge.report")
alert_log = logging.getLogger("mosbridge.alert")

# aiohttp drops a connection whose message exceeds its cap; keep that cap well above the
# core's own limit so a moderately oversized message is counted and skipped, not fatal.
TRANSPORT_CAP_FACTOR = 16
AI_BACKLOG_WARN = 250  # messages (5 s of caller audio) waiting for the AI socket
# A Twilio reader that finds messages already buffered handles them without the event loop
# running anything else: after this long it yields, so one caller's burst cannot stall the pod.
TWILIO_TURN_S = 0.002
RECEIVE_BLOCKED_S = 0.0002  # a receive that took longer than this waited on the socket: others ran
RECONNECT_BACKOFF_MAX_S = 4.0


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Access log without query strings: /twiml?patient_id=... must never reach the logs."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %.1fms', request.remote, request.method, request.path,
                         response.status, time * 1000.0)


def capture_policy(settings: Settings) -> CapturePolicy:
    tenants = frozenset(t.strip() for t in settings.capture_tenants.split(",") if t.strip())
    return CapturePolicy(Path(settings.capture_dir), tenants, settings.capture_per_call,
                         settings.capture_max_file_bytes, settings.capture_max_total_bytes)


def alert_rule(settings: Settings) -> AlertRule:
    return AlertRule(threshold=settings.alert_mos_threshold, window_s=settings.alert_window_s,
                     for_s=settings.alert_for_s, hysteresis=settings.alert_hysteresis,
                     min_calls=settings.alert_min_calls)


class BridgeStats:
    """Process-wide figures across calls, for load runs and quick looks: ``GET /stats``."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self.metrics = metrics
        self.latency = {d: LatencyHistogram() for d in Direction}
        self.deadline_misses = dict.fromkeys(Direction, 0)
        self.frames = dict.fromkeys(Direction, 0)
        self.loop_lag = LatencyHistogram()
        self.lag_counts = LagCounts()
        self.gc_pauses = {g: LatencyHistogram() for g in (0, 1, 2)}
        self.calls_started = 0
        self.calls_ended = 0

    def observe_loop_lag(self, lag_s: float) -> None:
        self.loop_lag.record(lag_s)
        self.lag_counts.observe(lag_s)
        self.metrics.loop_lag.observe(lag_s)

    def observe_gc_pause(self, generation: int, pause_s: float) -> None:
        self.gc_pauses[generation].record(pause_s)
        self.metrics.gc_pause.labels(generation=str(generation)).observe(pause_s)

    def observe(self, items: list[Outgoing], now: float) -> None:
        for item in items:
            if item.direction is not None:
                waited = now - item.ingress
                missed = waited > DEADLINE_S
                self.latency[item.direction].record(waited)
                self.frames[item.direction] += 1
                self.deadline_misses[item.direction] += missed
                self.metrics.frame(item.direction, waited, missed)

    def to_dict(self, live: int) -> dict[str, Any]:
        out: dict[str, Any] = {"calls_live": live, "calls_started": self.calls_started,
                               "calls_ended": self.calls_ended}
        for d in Direction:
            s = self.latency[d].summary()
            out[d.value] = {"frames": self.frames[d], "deadline_misses": self.deadline_misses[d],
                            "bridge_latency_ms": {"p50": s.p50_ms, "p99": s.p99_ms, "max": s.max_ms}}
        lag = self.loop_lag.summary()
        out["event_loop_lag_ms"] = {"p50": lag.p50_ms, "p99": lag.p99_ms, "max": lag.max_ms}
        out["gc_pause_ms"] = {}
        for g, h in self.gc_pauses.items():
            s = h.summary()
            out["gc_pause_ms"][str(g)] = {"collections": s.count, "total": s.count * s.mean_ms, "p99": s.p99_ms,
                                          "max": s.max_ms}
        return out


RtcInbox = asyncio.Queue[tuple[str, str | tuple[int, bytes]]]


def _id(call_sid: str) -> str:
    return call_sid or "call"


def _poster(queue: RtcInbox, kind: str) -> Callable[[str], None]:
    """A callback that queues what it is given, tagged with ``kind``."""
    return lambda text: queue.put_nowait((kind, text))


class CallDriver:
    """Drives one call's core from its two WebSockets.

    The core is given time relative to the call's start (monotonic seconds), and every
    interaction with it goes through the methods below, which also write the capture when the
    call is recorded: replay makes the same calls with the same floats, so it gets the same report.
    """

    def __init__(self, bridge: Bridge, twilio_ws: web.WebSocketResponse, twilio_protocol: object) -> None:
        self.bridge = bridge
        self.twilio = twilio_ws
        self.t0 = time.monotonic()
        self._arrival = ArrivalClock(twilio_protocol)
        self.core = CallCore(bridge.call_config, now=0.0)
        self.wall_start = time.time()
        self.capture: CallCapture | None = (
            bridge.recorder.open_call(iso_utc(self.wall_start)))
        self.ai: aiohttp.ClientWebSocketResponse | None = None
        self.rtc: WebRtcLeg | None = None
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

    def _arrived(self) -> float:
        """When the Twilio message just read reached the bridge (see ``bridge.live.aiohttp_internals``), on the
        call's clock; never before the previous one."""
        return self._arrival.stamp() - self.t0

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
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self._close_sockets()

    async def _close_sockets(self) -> None:
        if self.rtc is not None:
            with contextlib.suppress(Exception):
                await self.rtc.close()
        for ws in (self.ai, self.twilio):
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _twilio_loop(self) -> None:
        ws = self.twilio
        turn = time.monotonic()
        while True:
            before = time.monotonic()
            msg = await ws.receive()
            after = time.monotonic()
            if after - before > RECEIVE_BLOCKED_S:
                turn = after
            elif after - turn > TWILIO_TURN_S:
                await asyncio.sleep(0)  # a backlog: let every other call run between its messages
                turn = time.monotonic()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type is WSMsgType.ERROR:
                # aiohttp closes the socket on a message over its cap or a protocol violation
                self._apply(End(f"twilio_error: {type(msg.data).__name__}: {msg.data}"))
                return
            arrived = self._arrived()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                self._apply(TwilioIn(msg.data), arrived)
            elif msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            elif msg.type is WSMsgType.PONG:
                self._pong(msg.data, arrived)
                continue
            await self.flush()
            if self.core.ended:
                return

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
            reason = await (self._rtc_session() if self.core.webrtc else self._ws_session())
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

    async def _ws_session(self) -> str:
        """One Realtime WebSocket session; returns why it ended."""
        s = self.bridge.settings
        assert self.bridge.http is not None
        url = f"{s.openai_url}?model={s.openai_model}"
        headers = {"Authorization": f"Bearer {s.openai_api_key.get_secret_value() if s.openai_api_key else ''}"}
        try:
            self.ai = await asyncio.wait_for(
                self.bridge.http.ws_connect(url, headers=headers, autoping=False, heartbeat=None,
                                            max_msg_size=s.max_message_bytes * TRANSPORT_CAP_FACTOR),
                s.ai_connect_timeout_s)
        except TimeoutError:
            return f"connect timed out after {s.ai_connect_timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"connect failed: {exc}"
        self._apply(AiConnected())
        await self.flush()
        async for msg in self.ai:
            if msg.type is WSMsgType.TEXT:
                self._apply(AiIn(msg.data))
                await self.flush()
                # AI audio comes in bursts, faster than real time: let every other call's
                # reader run between two deltas, so a burst cannot hold caller frames
                # back (their arrival stamps would turn it into jitter that never was).
                await asyncio.sleep(0)
            elif msg.type is WSMsgType.PING:
                await self.ai.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                self._pong(msg.data)
            if self.core.ended:
                break
        return f"close code {self.ai.close_code}"

    async def _rtc_session(self) -> str:
        """One WebRTC session; returns why it ended. The leg's callbacks feed one queue, so events
        and audio reach the core in the order they arrived."""
        s = self.bridge.settings
        assert self.bridge.http is not None
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else ""
        inbox: RtcInbox = asyncio.Queue()
        leg = WebRtcLeg(self.bridge.http, s.openai_calls_url, key, self.core.session_update().session(),
                        on_event=_poster(inbox, "event"),
                        on_packet=lambda seq, opus: inbox.put_nowait(("packet", (seq, opus))),
                        on_closed=_poster(inbox, "closed"), stun_url=s.webrtc_stun_url)
        self.rtc = leg
        stats: asyncio.Task[None] | None = None
        try:
            try:
                await leg.connect()
            except (WebRtcError, aiohttp.ClientError, OSError, ValueError) as exc:
                return f"connect failed: {exc}"
            self._apply(AiConnected())
            await self.flush()
            stats = asyncio.create_task(self._rtp_stats(leg))
            while not self.core.ended:
                kind, data = await inbox.get()
                if isinstance(data, tuple):
                    self._apply(AiPacketIn(*data))
                elif kind == "closed":
                    return data
                else:
                    self._apply(AiIn(data))
                await self.flush()
            return "call ended"
        finally:
            if stats is not None:
                stats.cancel()
            self.rtc = None
            await leg.close()

    async def _rtp_stats(self, leg: WebRtcLeg) -> None:
        """The leg's RTP figures every ping period; RTCP's round trip stands for the ping RTT."""
        period = self.bridge.settings.ping_interval_s
        last_rtt: float | None = None
        while True:
            await asyncio.sleep(period)
            try:
                stats = await leg.stats()
            except Exception as exc:  # aiortc internals: a failed read is not worth the call
                log.warning("%s: WebRTC stats unavailable: %s", self.core.call_sid, exc)
                continue
            self._apply(AiRtp(stats))
            rtt = stats.get("rtt_ms")
            if isinstance(rtt, float) and rtt != last_rtt:
                last_rtt = rtt
                self._apply(AiRtt(rtt))

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
        for peer, ws in ((Peer.TWILIO, self.twilio), (Peer.REALTIME, self.ai)):
            if ws is None or ws.closed:
                continue
            self._ping_count += 1
            payload = self._ping_count.to_bytes(4, "big")
            self._pings[payload] = (peer, self.now())
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.ping(payload)

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
        milliseconds at a few hundred calls.)"""
        async with self._lock:
            to_twilio: list[Outgoing] = []
            to_ai: list[Outgoing] = []
            for item in self.core.data_to_send():
                (to_twilio if item.peer is Peer.TWILIO else to_ai).append(item)
            if to_ai:
                if self._ai_writing or self._ai_queue or not self._ai_keeps_up():
                    self._ai_queue.extend(to_ai)
                    self._ai_ready.set()
                else:
                    await self._send_ai(to_ai)
            for item in to_twilio:
                if not self.twilio.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.twilio.send_str(item.text)
            if to_twilio:
                self._sent(to_twilio, "twilio_out")
            while (event := self.core.next_event()) is not None:
                await self._on_event(event)
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

    def _ai_keeps_up(self) -> bool:
        """The AI leg takes a message without waiting: WebRTC always (its track queues), the
        WebSocket while aiohttp has not paused writing on it (flow control)."""
        if self.rtc is not None:
            return True
        ws = self.ai
        if ws is None or ws.closed:
            return False
        # unknown (an aiohttp that moved it): every message takes the writer's path
        return writing_paused(ws) is False

    async def _send_ai(self, batch: list[Outgoing]) -> None:
        rtc, ws = self.rtc, self.ai
        if rtc is not None:
            for item in batch:
                if item.audio is not None:
                    rtc.send_audio(item.audio)
                else:
                    rtc.send_event(item.text)
        else:
            for item in batch:
                if ws is not None and not ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.send_str(item.text)
        self._sent(batch, "ai_out")

    def _sent(self, items: list[Outgoing], direction: str) -> None:
        now = self.now()
        self.bridge.stats.observe(items, now)
        if self.capture is not None:
            for item in items:
                if item.audio is not None:
                    self.capture.event(now, direction, b64=base64.b64encode(item.audio).decode("ascii"))
                else:
                    self.capture.message(now, direction, item.text)
        self.core.record_sent(items, now)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, Problem):
            log.log(logging.ERROR if event.level == "error" else logging.WARNING, "%s: %s", event.kind,
                    event.detail)
        elif isinstance(event, CallStarted):
            log.info("call started %s tenant=%s tags=%s", event.call_sid, event.tenant, event.tags)
            if self.capture is not None:
                self.capture.decide(self.bridge.capture_policy.wants(event.tenant, event.tags))
            self._started.set()
        elif isinstance(event, ReconnectRealtime):
            self._reconnect.set()
        elif isinstance(event, CallEnded):
            self._on_ended(event)
            self._started.set()
            self._reconnect.set()
            await self._close_sockets()

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


class Bridge:
    """The server: routes, live calls, drain on SIGTERM."""

    def __init__(self, settings: Settings, writer: ReportWriter | None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self.clock = clock
        self.rng = rng or random.Random()
        self.call_config = settings.call_config()
        self.metrics = BridgeMetrics(max_tenants=settings.metrics_max_tenants)
        self.stats = BridgeStats(self.metrics)
        self.capture_policy = capture_policy(settings)
        self.recorder = CaptureRecorder(self.capture_policy, self.call_config, __version__)
        self.calls: set[CallDriver] = set()
        self.draining = False
        self.reports_written = 0
        self.bound_port = settings.port
        self.http: aiohttp.ClientSession | None = None
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        self.validator = RequestValidator(token)
        self.db = StoreThread(settings.database_url)
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.api = Api(self.db, admin_token, settings.default_plan, clock)
        self.evaluator = AlertEvaluator(alert_rule(settings)) if settings.alerts else None
        self._alert_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._gc_watch = GcPauseWatch(self.stats.observe_gc_pause)
        self._firing_shown: set[str] = set()
        self._webhooks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mosbridge-alert-webhook")
        self.app = web.Application()
        self.app.add_routes(self.api.routes())
        add_dashboard_routes(self.app, admin_token)
        self.app.add_routes([
            web.post("/twiml", self.twiml),
            web.get("/media", self.media),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/stats", self.stats_view),
            web.get("/metrics", self.metrics_view),
        ])
        self.app.on_startup.append(self._startup)
        self.app.on_cleanup.append(self._cleanup)

    async def _startup(self, app: web.Application) -> None:
        # limit=0: every live call holds its AI WebSocket for its whole life, and aiohttp's default
        # pool of 100 would leave the 101st call's session waiting for another call to hang up
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        quiet_malformed_requests()
        self._lag_task = asyncio.create_task(watch_loop_lag(self.stats.observe_loop_lag))
        self._gc_watch.install()
        if self.evaluator is not None:
            self._alert_task = asyncio.create_task(self._alert_loop())

    async def _cleanup(self, app: web.Application) -> None:
        self._gc_watch.remove()
        for task in (self._alert_task, self._lag_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(self.db.close)
        await asyncio.to_thread(self._webhooks.shutdown, True)

    def backoff_s(self, attempt: int) -> float:
        """The wait before reconnect ``attempt`` (0 for the first in a row): the base doubled each
        attempt up to RECONNECT_BACKOFF_MAX_S, less up to half at random, so calls that lost the
        AI together do not come back together."""
        base = min(RECONNECT_BACKOFF_MAX_S, self.settings.ai_reconnect_backoff_s * 2.0 ** min(attempt, 16))
        return base * self.rng.uniform(0.5, 1.0)

    # -------------------------------------------------------------- alerts

    async def _alert_loop(self) -> None:
        assert self.evaluator is not None
        evaluator = self.evaluator
        period = self.settings.alert_eval_interval_s
        was_leader: bool | None = None
        while True:
            await asyncio.sleep(period)
            try:
                result = await self.db.run(evaluator.evaluate, self.clock())
            except Exception as e:
                log.error("alert evaluation failed (report store %s): %s", redact_url(self.settings.database_url), e)
                continue
            if result.leader != was_leader:
                log.info("alert evaluation %s", "active in this instance" if result.leader
                         else "left to another instance (it holds the leader lock)")
                was_leader = result.leader
            for notice in result.notices:
                self._alert(notice)
            if result.leader:
                for tenant in self._firing_shown - result.firing:
                    self.metrics.set_alert(tenant, False)
                for tenant in result.firing:
                    self.metrics.set_alert(tenant, True)
                self._firing_shown = set(result.firing)

    def _alert(self, notice: AlertNotice) -> None:
        level = logging.WARNING if notice.status == "firing" else logging.INFO
        alert_log.log(level, "ALERT %s %s", notice.status.upper(), notice.summary)
        url = self.settings.alert_webhook_url
        if url is not None:
            self._webhooks.submit(post_json, url, notice.to_dict(),
                                  f"alert {notice.alert} {notice.status} for tenant {notice.tenant}")

    # -------------------------------------------------------------- signatures

    def _public_url(self, request: web.Request, websocket: bool) -> str:
        base = self.settings.public_url
        if base is None:
            proto = request.headers.get("X-Forwarded-Proto", request.scheme)
            host = request.headers.get("X-Forwarded-Host", request.host)
            base = f"{proto}://{host}"
        url = base + request.path_qs
        if websocket:
            url = "wss://" + url.split("://", 1)[1] if url.startswith("https") else "ws://" + url.split("://", 1)[1]
        return url

    def _signed(self, request: web.Request, params: dict[str, str], websocket: bool) -> bool:
        if not self.settings.validate_twilio_signature:
            return True
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not self.settings.twilio_auth_token:
            return False
        return bool(self.validator.validate(self._public_url(request, websocket), params, signature))

    # -------------------------------------------------------------- routes

    async def twiml(self, request: web.Request) -> web.Response:
        try:
            form = {k: str(v) for k, v in (await request.post()).items()}
        except (ValueError, LookupError, UnicodeDecodeError, AssertionError, aiohttp.ClientError,
                web.HTTPException) as exc:  # a body aiohttp cannot read: truncated, bad charset or encoding
            log.warning("rejected /twiml: unreadable form body (%s)", type(exc).__name__)
            return web.Response(status=400, text="unreadable form body")
        if not self._signed(request, form, websocket=False):
            log.warning("rejected /twiml: missing or bad X-Twilio-Signature")
            return web.Response(status=403, text="bad signature")
        stream_url = self._public_url(request, websocket=True).split("/twiml", 1)[0] + "/media"
        stream = Stream(url=stream_url)
        for name, value in request.query.items():
            stream.parameter(name=name, value=value)
        connect = Connect()
        connect.append(stream)
        response = VoiceResponse()
        response.append(connect)
        return web.Response(text=str(response), content_type="text/xml")

    async def media(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            return web.Response(status=503, text="draining")
        if not self._signed(request, {}, websocket=True):
            log.warning("rejected /media upgrade: missing or bad X-Twilio-Signature")
            return web.Response(status=403, text="bad signature")
        ws = web.WebSocketResponse(autoping=False,
                                   max_msg_size=self.settings.max_message_bytes * TRANSPORT_CAP_FACTOR)
        await ws.prepare(request)
        driver = CallDriver(self, ws, request.protocol)
        self.calls.add(driver)
        self.stats.calls_started += 1
        try:
            await driver.run()
        finally:
            self.calls.discard(driver)
            self.stats.calls_ended += 1
        return ws

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "calls": len(self.calls)})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.draining:
            return web.json_response({"status": "draining", "calls": len(self.calls)}, status=503)
        return web.json_response({"status": "ready", "calls": len(self.calls)})

    def _metrics_allowed(self, request: web.Request) -> bool:
        token = self.settings.metrics_token
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode())

    async def metrics_view(self, request: web.Request) -> web.Response:
        if not self._metrics_allowed(request):
            return web.Response(status=401, text="metrics token required", headers={"WWW-Authenticate": "Bearer"})
        self.metrics.calls_live.set(len(self.calls))
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stats_view(self, request: web.Request) -> web.Response:
        if not self._metrics_allowed(request):
            return web.Response(status=401, text="metrics token required", headers={"WWW-Authenticate": "Bearer"})
        return web.json_response(self.stats.to_dict(len(self.calls)))

    async def drain(self, timeout_s: float) -> None:
        """Stop taking calls, let live ones finish for ``timeout_s``, then end the rest."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.calls and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for driver in list(self.calls):
            await driver.end("shutdown")
        while self.calls and loop.time() < deadline + 5.0:
            await asyncio.sleep(0.05)


async def serve(settings: Settings, *, on_ready: Callable[[Bridge], None] | None = None,
                stop: asyncio.Event | None = None) -> Bridge:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain and write every report.

    ``on_ready`` gets the running bridge (tests read ``bound_port`` from it)."""
    if settings.webrtc_ice_addresses:
        restrict_ice_to([a.strip() for a in settings.webrtc_ice_addresses.split(",") if a.strip()])
    bridge = Bridge(settings, None)
    writer = ReportWriter(settings.database_url, settings.report_webhook_url,
                          spool_path=Path(settings.spool_path) if settings.spool_path else None,
                          on_write=bridge.metrics.report_write, on_spool_depth=bridge.metrics.set_spool_depth)
    bridge.writer = writer
    runner = web.AppRunner(bridge.app, handle_signals=False, shutdown_timeout=1.0,
                           access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        bridge.bound_port = runner.addresses[0][1] if runner.addresses else settings.port
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        log.info("mosbridge listening on %s:%s (ai_format=%s, store=%s, dashboard /dashboard)", settings.host,
                 bridge.bound_port, settings.ai_format, redact_url(settings.database_url))
        if on_ready is not None:
            on_ready(bridge)
        await stop.wait()
        log.info("draining %d live call(s), up to %.0f s", len(bridge.calls), settings.drain_timeout_s)
        await bridge.drain(settings.drain_timeout_s)
    finally:
        await runner.cleanup()
        await asyncio.to_thread(writer.close, 10.0)
        await asyncio.to_thread(bridge.recorder.close, 10.0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        log.info("stopped; %d report(s) written this run", bridge.reports_written)
    return bridge
