"""The live app: the aiohttp server Twilio's ``<Connect><Stream>`` connects to, and what calls share.

Routes: ``POST /twiml`` (the voice webhook: returns ``<Connect><Stream>``), ``GET /media`` (the
Media Streams WebSocket), ``GET /healthz``, ``GET /readyz``, ``GET /stats`` and ``GET /metrics``.
Each call is one :class:`~bridge.live.driver.CallDriver` over one :class:`~bridge.core.call.CallCore`;
this module holds the app, the routes, the process-wide state calls share (settings, HTTP client,
report writer, metrics, capture recorder, alert loop) and the drain on SIGTERM. With ``serve
--workers N`` each worker process runs one :func:`serve` on the supervisor's port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from bridge import __version__
from bridge.core.call import CallCore
from bridge.live.admission import Admission, AdmissionLimits, Refusal
from bridge.live.ai_check import NO_KEY, RECHECK_S, reach
from bridge.live.ai_legs import TRANSPORT_CAP_FACTOR, AiLeg, RealtimeRtcLeg, RealtimeWsLeg, RtcTarget, WsTarget
from bridge.live.aiohttp_internals import HandoffWebSocket
from bridge.live.driver import CallDriver
from bridge.live.gc_pauses import GcPauseWatch
from bridge.live.logs import quiet_malformed_requests
from bridge.live.loop_lag import watch_loop_lag
from bridge.live.metrics import BridgeMetrics
from bridge.live.recorder import CapturePolicy, CaptureRecorder
from bridge.live.settings import Settings
from bridge.live.stats import BridgeStats
from bridge.live.webrtc_net import restrict_ice_to
from bridge.live.worker import Worker
from bridge.ops.alerts import AlertEvaluator, AlertNotice
from bridge.ops.api import Api
from bridge.ops.dashboard import DASHBOARD, add_dashboard_routes
from bridge.ops.store import default_spool_path, redact_url
from bridge.ops.store_thread import StoreThread
from bridge.ops.store_writer import ReportWriter
from bridge.ops.webhook import post_json
from quality.alerting import AlertRule

log = logging.getLogger("mosbridge")
alert_log = logging.getLogger("mosbridge.alert")

RECONNECT_BACKOFF_MAX_S = 4.0
GAUGE_REFRESH_S = 1.0


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


class Bridge:
    """The server: routes, live calls, drain on SIGTERM."""

    def __init__(self, settings: Settings, writer: ReportWriter | None,
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None,
                 worker: Worker | None = None) -> None:
        self.settings = settings
        self.worker = worker  # None: the only process
        self.writer = writer
        self.clock = clock
        self.rng = rng or random.Random()
        self.call_config = settings.call_config()
        self.metrics = BridgeMetrics(max_tenants=settings.metrics_max_tenants, multiprocess=worker is not None)
        self.stats = BridgeStats(self.metrics)
        self.capture_policy = capture_policy(settings)
        self.recorder = CaptureRecorder(self.capture_policy, self.call_config, __version__)
        self.calls: set[CallDriver] = set()
        self.draining = False
        self.admission = Admission(AdmissionLimits(settings.max_calls, settings.overload_loop_lag_ms))
        self.metrics.ready.set(1)
        self.reports_written = 0
        self.bound_port = settings.port
        self.http: aiohttp.ClientSession | None = None
        token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        self.validator = RequestValidator(token)
        self.db = StoreThread(settings.database_url)
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.api = Api(self.db, admin_token, settings.default_plan, clock)
        # With workers, worker 0 alone evaluates: N evaluators would send every alert N times.
        runs_alerts = settings.alerts and (worker is None or worker.runs_alerts)
        self.evaluator = AlertEvaluator(alert_rule(settings)) if runs_alerts else None
        self._alert_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._ai_task: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None
        self.ai_problem: str | None = None  # why the AI side cannot be used, if it cannot
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
            web.get("/", self.root),
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
        self._lag_task = asyncio.create_task(watch_loop_lag(self._observe_lag))
        # the first check is over before the first call is taken (an unreachable AI costs start-up
        # at most ai_connect_timeout_s); re-checks go on in the background
        await self._check_ai()
        self._ai_task = asyncio.create_task(self._recheck_ai())
        if self.worker is not None:
            self._gauge_task = asyncio.create_task(self._refresh_gauges())
        self._gc_watch.install()
        if self.evaluator is not None:
            self._alert_task = asyncio.create_task(self._alert_loop())

    async def _cleanup(self, app: web.Application) -> None:
        self._gc_watch.remove()
        self.stats.flush_gc_pauses()
        # a worker's last frames (those of calls the drain left too) reach the shared files
        self.stats.publish_latency([driver.core for driver in self.calls])
        for task in (self._alert_task, self._lag_task, self._ai_task, self._gauge_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.http is not None:
            await self.http.close()
        await asyncio.to_thread(self.db.close)
        await asyncio.to_thread(self._webhooks.shutdown, True)

    async def _check_ai(self) -> None:
        """Say once if the AI side cannot work (no key, or its host does not answer), and once
        when an unreachable host answers again."""
        s = self.settings
        if s.openai_api_key is None:
            self.ai_problem = NO_KEY
            log.error("the AI side will not work: %s", NO_KEY)
            return
        url = s.openai_calls_url if self.call_config.ai_format == "opus16k" else s.openai_url
        problem = await reach(url, s.ai_connect_timeout_s)
        if problem is not None and self.ai_problem is None:
            log.error("the AI at %s is %s; calls will fail until it answers", redact_url(url), problem)
        elif problem is None and self.ai_problem is not None:
            log.info("the AI at %s answers again", redact_url(url))
        self.ai_problem = problem

    async def _recheck_ai(self) -> None:
        while self.ai_problem is not None and self.ai_problem != NO_KEY:
            await asyncio.sleep(RECHECK_S)
            await self._check_ai()

    async def _refresh_gauges(self) -> None:
        """With workers, any worker may answer a scrape: each keeps its own gauges current."""
        while True:
            self.metrics.calls_live.set(len(self.calls))
            self.stats.publish_latency([driver.core for driver in self.calls])
            self.stats.flush_gc_pauses()
            self._refusal()
            await asyncio.sleep(GAUGE_REFRESH_S)

    def _observe_lag(self, lag_s: float) -> None:
        self.stats.observe_loop_lag(lag_s)
        self.admission.observe_lag(lag_s)

    def open_ai_leg(self, core: CallCore) -> AiLeg:
        """A new AI leg for ``core``: WebRTC for ``opus16k``, the Realtime WebSocket otherwise."""
        s = self.settings
        assert self.http is not None
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else ""
        if core.webrtc:
            return RealtimeRtcLeg(self.http, RtcTarget(s.openai_calls_url, key, core.session_update().session(),
                                                       s.webrtc_stun_url, s.ping_interval_s))
        return RealtimeWsLeg(self.http, WsTarget(f"{s.openai_url}?model={s.openai_model}", key,
                                                 s.ai_connect_timeout_s, s.max_message_bytes))

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
        refusal = self._refusal()
        if refusal is not None:
            self._refused("twiml", refusal)
            return web.Response(text=self.settings.overload_twiml, content_type="text/xml")
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
        if not self._signed(request, {}, websocket=True):
            log.warning("rejected /media upgrade: missing or bad X-Twilio-Signature")
            return web.Response(status=403, text="bad signature")
        refusal = self._refusal()
        if refusal is not None:
            self._refused("media", refusal)
            return web.Response(status=503, text=f"not taking calls: {refusal}", headers={"Retry-After": "1"})
        ws = HandoffWebSocket(autoping=False,
                              max_msg_size=self.settings.max_message_bytes * TRANSPORT_CAP_FACTOR)
        await ws.prepare(request)
        driver = CallDriver(self, ws, request.protocol)
        self.calls.add(driver)
        self.metrics.calls_live.set(len(self.calls))
        self.stats.calls_started += 1
        self.stats.track(driver.core)
        try:
            await driver.run()
        finally:
            self.calls.discard(driver)
            self.metrics.calls_live.set(len(self.calls))
            self.stats.calls_ended += 1
            self.stats.call_ended(driver.core)
        return ws

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(DASHBOARD)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "calls": len(self.calls)})

    async def readyz(self, request: web.Request) -> web.Response:
        refusal = self._refusal()
        if refusal is None and self.ai_problem == NO_KEY:
            return web.json_response({"status": "no_ai_key", "ai": NO_KEY, "calls": len(self.calls)}, status=503)
        body = {"status": "ready" if refusal is None else refusal, "calls": len(self.calls),
                "loop_lag_ms": round(self.admission.lag_ms, 2), "ai": self.ai_problem or "ok"}
        return web.json_response(body, status=200 if refusal is None else 503)

    def _refusal(self) -> Refusal | None:
        refusal = self.admission.refusal(len(self.calls), self.draining)
        self.metrics.ready.set(refusal is None)
        return refusal

    def _refused(self, route: str, reason: Refusal) -> None:
        self.metrics.refused.labels(route=route, reason=reason).inc()
        log.warning("refused a new call at /%s: %s (%d live, loop lag %.1f ms)", route, reason, len(self.calls),
                    self.admission.lag_ms)

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
        self.stats.flush_gc_pauses()
        self.stats.publish_latency([driver.core for driver in self.calls])
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stats_view(self, request: web.Request) -> web.Response:
        if not self._metrics_allowed(request):
            return web.Response(status=401, text="metrics token required", headers={"WWW-Authenticate": "Bearer"})
        body = self.stats.to_dict([driver.core for driver in self.calls])
        if self.worker is not None:
            body["worker"] = {"index": self.worker.index, "count": self.worker.count, "pid": os.getpid()}
        return web.json_response(body)

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
                stop: asyncio.Event | None = None, worker: Worker | None = None) -> Bridge:
    """Run until SIGTERM/SIGINT (or ``stop``), then drain and write every report.

    ``on_ready`` gets the running bridge (tests read ``bound_port`` from it). A worker of ``serve
    --workers N`` passes its ``worker`` role and listens with ``SO_REUSEPORT``."""
    if settings.webrtc_ice_addresses:
        restrict_ice_to([a.strip() for a in settings.webrtc_ice_addresses.split(",") if a.strip()])
    bridge = Bridge(settings, None, worker=worker)
    spool = Path(settings.spool_path) if settings.spool_path else default_spool_path(settings.database_url)
    if spool is not None and worker is not None:
        spool = worker.own_path(spool)
    writer = ReportWriter(settings.database_url, settings.report_webhook_url, spool_path=spool,
                          on_write=bridge.metrics.report_write, on_spool_depth=bridge.metrics.set_spool_depth)
    bridge.writer = writer
    runner = web.AppRunner(bridge.app, handle_signals=False, shutdown_timeout=1.0,
                           access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        # Workers of one pod each listen on the port; the kernel spreads connections over them.
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=worker is not None)
        await site.start()
        bridge.bound_port = runner.addresses[0][1] if runner.addresses else settings.port
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        who = "mosbridge" if worker is None else f"mosbridge worker {worker.index} (pid {os.getpid()})"
        log.info("%s listening on %s:%s (ai_format=%s, store=%s, dashboard /dashboard)", who, settings.host,
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
