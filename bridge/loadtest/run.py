"""The load driver: N simulated Twilio callers against a bridge and the Realtime stand-in, on loopback.

By default it starts both as separate processes (`mosbridge serve`, `mosbridge fake-realtime`),
the bridge pinned to CPU 0 and everything else to the other CPUs, so "calls per core" means one
core. Callers are real WebSocket clients (``bridge.stand_ins.twilio_caller.SimulatedCaller``, the one replay uses)
pacing 20 ms frames of speech and silence, barging in now and then, with loss, delay and jitter
injected on their side by a seeded generator. Calls start on a ramp (``calls``) or arrive at a
fixed rate (``rate``, Poisson or evenly spaced: ``bridge.loadtest.arrivals``). The figures come
from the bridge's own stamps (``GET /stats``), its stored reports, /proc for its CPU and memory,
and the callers' view, set beside the stand-in's stamps (``bridge.loadtest.caller_view``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bridge.codecs.g711 import ulaw_encode
from bridge.core.config import CallConfig
from bridge.core.report import G711_PACKETIZATION_MS, chains
from bridge.loadtest.arrivals import arrival_times, count_bounds
from bridge.loadtest.caller_view import CallerView, TaggedCallerTap, caller_view, not_measured
from bridge.loadtest.percentiles import percentiles as _percentiles
from bridge.loadtest.rig_gc import no_full_collections
from bridge.ops.store import open_store
from bridge.stand_ins.audio_tags import NONCE_LIMIT, CallerTag, tag_caller_frame
from bridge.stand_ins.frame_pacer import FramePacer
from bridge.stand_ins.realtime_ws import speech_like
from bridge.stand_ins.simulate import burst_r, playout_truth, truth_mos
from bridge.stand_ins.stamp_log import StampLog, read_stamps
from bridge.stand_ins.twilio_caller import FRAME_S, CallerTap, ScheduledFrame, SimulatedCaller
from quality.lag import lag_figures

SPEECH_S, LISTEN_S, BARGE_S = 1.2, 2.6, 0.4
_GOLDEN = (5 ** 0.5 - 1) / 2  # n * this, mod 1: phases spread evenly whatever the count
START_ATTEMPTS = 3
RIG_SATURATED_PCT = 90.0  # the callers and stand-in this busy deliver frames late and in bursts
STARTUP_TIMEOUT_S = 60.0  # a cold machine imports aiortc and friends slowly; a dead child fails at once
STAMPS_WAIT_S = 5.0  # after the last hangup, how long the stand-in may take to write its sessions' stamps


@dataclass(frozen=True)
class LoadOptions:
    calls: int = 20
    ramp_s: float = 2.0
    duration_s: float = 10.0
    ai_format: str = "pcmu"
    loss_pct: float = 0.0
    jitter_ms: float = 0.0
    delay_ms: float = 0.0
    target: str | None = None  # ws://host:port/media of a running bridge
    database_url: str | None = None  # with --target: where that bridge stores reports
    seed: int = 1
    bridge_cpu: int | None = 0  # pin the bridge here (None: no pinning)
    progress: Callable[[str], None] | None = None
    tenant: str = "loadtest"  # the callers' customParameters tenant
    bridge_env: dict[str, str] = field(default_factory=dict)  # extra environment of the bridge child process
    rate: float | None = None  # calls arriving per second (instead of `calls` on a ramp), for duration_s
    call_seconds: float = 10.0  # with rate: how long each call lasts
    arrivals: str = "poisson"  # with rate: "poisson" or "even" (bridge.loadtest.arrivals)
    stand_in_stamps: str | None = None  # with target: the stamps file of the stand-in behind it (--stamps)

    @property
    def run_s(self) -> float:
        """When the last call hangs up, at the latest (s after the start)."""
        return self.duration_s + (self.call_seconds if self.rate is not None else 0.0)


@dataclass
class CallPlan:
    call_sid: str
    start_at: float
    frames: list[ScheduledFrame]
    generated: int
    speech_ends: list[float]
    index: int = 0
    hangup_s: float = 0.0  # s after the call's start; later if its last frame is sent later

    @property
    def stream_sid(self) -> str:
        return "MZ" + self.call_sid[2:]

    def caller(self, media_url: str, params: dict[str, str], delay_ms: float,
               tap: CallerTap | None = None, pacer: FramePacer | None = None) -> SimulatedCaller:
        """The simulated caller of this plan, answering pings after a network of ``delay_ms`` each way."""
        return SimulatedCaller(media_url, stream_sid=self.stream_sid, call_sid=self.call_sid, params=params,
                               pong_delay_s=2 * delay_ms / 1000.0, speech_ends=self.speech_ends, keep_messages=False,
                               tap=tap, pacer=pacer)

    def hangup_after(self, at_least_s: float) -> float:
        """When the caller hangs up, in s after the call's start: not before its last frame is sent."""
        return max(self.frames[-1].send_at if self.frames else 0.0, at_least_s)


@dataclass
class LoadResult:
    options: dict[str, Any]
    calls: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    deadline_misses: dict[str, int] = field(default_factory=dict)
    bridge_latency_ms: dict[str, Any] = field(default_factory=dict)
    event_loop_lag_ms: dict[str, float] | None = None  # how long ready audio waited unread in the bridge
    gc_pause_ms: dict[str, dict[str, float]] | None = None  # per generation: collections, total, p99, max
    # the same between the end of the ramp and the first hangups: what the bridge sustains
    steady_loop_lag: dict[str, float] | None = None
    steady_deadline_misses: dict[str, int] | None = None
    caller_turn_latency_ms: dict[str, float] | None = None
    bridge_cpu_pct: float | None = None
    bridge_cpu_ms_per_call_second: float | None = None
    # the callers and the stand-in, as % of the CPUs they run on: near 100, the rig is what saturated
    rig_cpu_pct: float | None = None
    rss_mb: dict[str, float] | None = None
    rss_mb_per_call: float | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (s since start, MB), every second
    mos: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    call_seconds: float = 0.0  # summed over the calls, as planned
    peak_live_calls: int = 0  # the most calls up at once, as the callers counted them
    refused: int = 0  # calls whose /media upgrade a full bridge answered with 503 (admission)
    arrivals: dict[str, Any] | None = None  # with rate: the process, the expected count and its bounds
    # latency each way and audio queued at hangup as the callers saw it (bridge.loadtest.caller_view)
    caller_view: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)  # WebSocket messages each way, callers' and stand-in's

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------- plans


def run_nonce(run_id: str) -> int:
    """The run's mark in the callers' audio tags (calls of other runs in one stamps file differ)."""
    return zlib.crc32(run_id.encode()) % NONCE_LIMIT


def call_starts(opts: LoadOptions) -> list[tuple[float, float]]:
    """(start, hangup after start) of every call: on the ramp, or at the arrivals of ``rate``."""
    if opts.rate is None:
        # Each call at a phase of its own within the 20 ms frame, as independent calls are: on a
        # ramp of calls/50 s, even starts are 20 ms apart and every call's frames would leave at
        # the same instant, one burst per frame for the bridge and the stand-in.
        starts = [opts.ramp_s * n / max(1, opts.calls) + FRAME_S * (n * _GOLDEN % 1.0) for n in range(opts.calls)]
        return [(t, opts.duration_s - t - 0.5) for t in starts]
    times = arrival_times(opts.rate, opts.duration_s, opts.arrivals, random.Random(opts.seed))
    return [(t, opts.call_seconds) for t in times]


def plan_calls(opts: LoadOptions, run_id: str) -> list[CallPlan]:
    """Every caller's frames, with its impairments and the MOS they should produce. For pcmu each
    frame carries a caller tag (run, call, frame) in its last bytes, for the callers' view."""
    voice = ulaw_encode(speech_like(int(2 * SPEECH_S * 1000), 8000))
    all_talk = [voice[i:i + 160] for i in range(0, len(voice) - 159, 160)]
    barge = all_talk[: round(BARGE_S / FRAME_S)]
    silence = b"\xff" * 160
    nonce = run_nonce(run_id) if opts.ai_format == "pcmu" else None
    plans = []
    for n, (start_at, hangup_s) in enumerate(call_starts(opts)):
        rng = random.Random(opts.seed * 100_003 + n)
        length = max(1.0, hangup_s)
        audio: list[bytes] = []
        speech_ends: list[float] = []
        cycle = 0
        # Callers talk and listen for their own (seeded) lengths, as real ones do: a harness
        # whose callers all speak in step makes the AI answer them all at once.
        audio += [silence] * rng.randrange(0, 100)
        while len(audio) * FRAME_S < length:
            audio += all_talk[: round(rng.uniform(0.5, 2.0) * SPEECH_S / FRAME_S)]
            speech_ends.append(len(audio) * FRAME_S)
            listen = [silence] * round(rng.uniform(0.85, 1.25) * LISTEN_S / FRAME_S)
            if n % 3 == 1 and cycle % 2 == 1:  # barge in 0.8 s into the AI's answer
                k = round(0.8 / FRAME_S)
                listen[k:k + len(barge)] = barge
            audio += listen
            cycle += 1
        audio = audio[: int(length / FRAME_S)]
        if nonce is not None:
            audio = [tag_caller_frame(f, CallerTag(nonce, n, i)) for i, f in enumerate(audio)]
        frames, generated = _impair(audio, opts, rng)
        plans.append(CallPlan(f"CA{run_id}{n:05d}", start_at, frames, generated,
                              [e for e in speech_ends if e < length], n, hangup_s))
    return plans


def _impair(audio: list[bytes], opts: LoadOptions, rng: random.Random) -> tuple[list[ScheduledFrame], int]:
    """Twilio's loss: frames lost at random (loss_pct) before Twilio are never sent, so their
    media time is skipped; all are delayed by delay_ms plus an exponential extra delay with mean
    jitter_ms (its RFC 3550 jitter is about that mean); TCP keeps order."""
    out: list[ScheduledFrame] = []
    last = 0.0
    n = len(audio)
    for i, frame in enumerate(audio):
        if 0 < i < n - 1 and rng.random() * 100 < opts.loss_pct:
            continue
        extra = rng.expovariate(1000.0 / opts.jitter_ms) if opts.jitter_ms > 0 else 0.0
        at = max(last, i * FRAME_S + opts.delay_ms / 1000.0 + extra)
        last = at
        out.append(ScheduledFrame(i * 20, at, base64.b64encode(frame).decode()))
    return out, n


def expected_mos(plan: CallPlan, opts: LoadOptions) -> float:
    """The call's MOS from what the plan injected (ground truth: lost frames, planned send times,
    the injected one-way delay), never from a meter, so a meter that load or a bug distorts
    shows as error."""
    sent = {f.media_ms // 20 for f in plan.frames}
    lost = [k for k in range(plan.generated) if k not in sent]
    buffer_ms, late_pct = playout_truth([f.send_at - f.media_ms / 1000.0 for f in plan.frames])
    defaults = CallConfig()
    _, out_chain = chains(opts.ai_format, 24000, defaults.edge_codec)
    return truth_mos(loss_pct=100.0 * len(lost) / plan.generated, burst_r=burst_r(lost, plan.generated),
                     buffer_ms=buffer_ms, late_pct=late_pct, chain=out_chain,
                     base_delay_ms=defaults.pstn_delay_ms + G711_PACKETIZATION_MS + opts.delay_ms)


# ----------------------------------------------------------------------------------- processes


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports: all n sockets stay bound until every port is chosen, so
    the kernel cannot hand the same port out twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _cpu_s(pid: int) -> float:
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _source_path() -> str:
    """PYTHONPATH for the children: the tree this ``bridge`` was imported from first, so they run
    the same code as the rig (their working directory is a temporary one)."""
    root = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH", "")
    return root + (os.pathsep + rest if rest else "")


class ChildExited(RuntimeError):
    """A child process of the load test died before it was ready."""


class Processes:
    """The bridge and the stand-in as child processes on loopback."""

    def __init__(self, opts: LoadOptions, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.bridge_port, self.fake_port, self.webrtc_port = _free_ports(3)
        self.database_url = f"sqlite:///{workdir / 'load.db'}"
        self.stamps_path = workdir / "stamps.jsonl"
        self.procs: list[asyncio.subprocess.Process] = []
        self.bridge_pid = 0
        self.rig_cpus: list[int] = []  # where the callers and the stand-in run
        self._own_affinity = os.sched_getaffinity(0)

    async def start(self) -> None:
        """Start both children; a child that dies during start-up (most likely a port taken between
        choosing it and binding it) is retried on fresh ports, twice, then reported with its stderr."""
        for attempt in range(START_ATTEMPTS):
            try:
                await self._start_once()
                return
            except ChildExited:
                await self.stop()
                self.procs.clear()
                if attempt == START_ATTEMPTS - 1:
                    raise
                self.bridge_port, self.fake_port, self.webrtc_port = _free_ports(3)

    async def _start_once(self) -> None:
        others = sorted(os.sched_getaffinity(0) - {self.opts.bridge_cpu}) if self.opts.bridge_cpu is not None else []
        self.rig_cpus = others or sorted(os.sched_getaffinity(0))
        await self._spawn(["fake-realtime", "--port", str(self.fake_port), "--webrtc-port", str(self.webrtc_port),
                           "--speed", "4", "--response-ms", "1500", "--encode-once",
                           "--stamps", str(self.stamps_path)], {}, others)
        env = {
            "MOSBRIDGE_HOST": "127.0.0.1", "MOSBRIDGE_PORT": str(self.bridge_port),
            "MOSBRIDGE_OPENAI_URL": f"ws://127.0.0.1:{self.fake_port}/v1/realtime", "OPENAI_API_KEY": "load",
            "MOSBRIDGE_OPENAI_CALLS_URL": f"http://127.0.0.1:{self.webrtc_port}/v1/realtime/calls",
            "MOSBRIDGE_WEBRTC_ICE_ADDRESSES": "127.0.0.1",
            "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0", "MOSBRIDGE_DATABASE_URL": self.database_url,
            "MOSBRIDGE_AI_FORMAT": self.opts.ai_format, "MOSBRIDGE_LOG_LEVEL": "ERROR",
            "MOSBRIDGE_PSEUDONYM_KEY": "load", "MOSBRIDGE_CAPTURE_PER_CALL": "0",
            "MOSBRIDGE_DRAIN_TIMEOUT_S": "5",
            # One process: its CPU, RSS and /stats are what the run measures (and the pin below
            # comes after the start, too late for the default, the CPUs the process may use).
            "MOSBRIDGE_WORKERS": "1",
            **self.opts.bridge_env,
        }
        pin = [self.opts.bridge_cpu] if self.opts.bridge_cpu is not None else []
        bridge = await self._spawn(["serve"], env, pin)
        self.bridge_pid = bridge.pid
        fake = self.procs[0]
        await self._wait_http(f"http://127.0.0.1:{self.bridge_port}/healthz", bridge)
        await self._wait_tcp(self.fake_port, fake)
        await self._wait_tcp(self.webrtc_port, fake)
        if others:
            os.sched_setaffinity(0, others)  # the callers stay off the bridge's core too

    async def _spawn(self, args: list[str], env: dict[str, str], cpus: list[int]) -> asyncio.subprocess.Process:
        full_env = {**os.environ, **env, "PYTHONPATH": _source_path()}
        with self._stderr_path(args[0]).open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge", *args, env=full_env, cwd=self.workdir,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
        if cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, cpus)
        self.procs.append(proc)
        return proc

    def _stderr_path(self, command: str) -> Path:
        return self.workdir / f"{command}.stderr"

    def _check_alive(self, proc: asyncio.subprocess.Process, what: str, command: str) -> None:
        """Fail at once, with the child's own error, when it died during start-up."""
        if proc.returncode is None:
            return
        tail = self._stderr_path(command).read_text(errors="replace")[-2000:].strip()
        raise ChildExited(f"{what} exited with code {proc.returncode} during start-up:\n{tail}")

    async def _wait_http(self, url: str, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        # a short per-request timeout: whatever holds the port may accept and never answer
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
            while time.monotonic() < deadline:
                self._check_alive(proc, "the bridge", "serve")
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with http.get(url) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the bridge did not come up at {url} within {STARTUP_TIMEOUT_S:.0f} s")

    async def _wait_tcp(self, port: int, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive(proc, "the Realtime stand-in", "fake-realtime")
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the Realtime stand-in did not come up on port {port} within {STARTUP_TIMEOUT_S:.0f} s")

    async def stop(self) -> None:
        os.sched_setaffinity(0, self._own_affinity)
        for proc in reversed(self.procs):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()


# ----------------------------------------------------------------------------------- the run


async def run_load(opts: LoadOptions, *, clock: Callable[[], float] = time.monotonic) -> LoadResult:
    """One run. ``clock`` stamps the callers' view; it must be the stand-in's clock too
    (``time.monotonic``: CLOCK_MONOTONIC, one clock for all processes on Linux)."""
    with tempfile.TemporaryDirectory(prefix="mosbridge-load-") as tmp:
        procs = None if opts.target else Processes(opts, Path(tmp))
        if procs is not None:
            await procs.start()
        try:
            media_url = opts.target or f"ws://127.0.0.1:{procs.bridge_port if procs else 0}/media"
            db_url = opts.database_url or (procs.database_url if procs else None)
            stamps = procs.stamps_path if procs else (Path(opts.stand_in_stamps) if opts.stand_in_stamps else None)
            return await _drive(opts, media_url, db_url, procs, stamps, clock)
        finally:
            if procs is not None:
                await procs.stop()


async def _drive(opts: LoadOptions, media_url: str, db_url: str | None, procs: Processes | None,
                 stamps_path: Path | None, clock: Callable[[], float]) -> LoadResult:
    loop = asyncio.get_running_loop()
    run_id = f"{int(time.time()) % 100000:05d}{opts.seed % 100:02d}"
    plans = plan_calls(opts, run_id)
    view_missing = _view_missing(opts, stamps_path)
    taps = {p.index: TaggedCallerTap(clock) for p in plans} if view_missing is None else {}
    stamps_from = stamps_path.stat().st_size if stamps_path is not None and stamps_path.exists() else 0
    base_url = media_url.replace("ws://", "http://").replace("wss://", "https://").rsplit("/media", 1)[0]
    stats_url, metrics_url = base_url + "/stats", base_url + "/metrics"
    pid = procs.bridge_pid if procs else None
    rss_idle = _rss_mb(pid) if pid else None
    rss_peak = rss_idle or 0.0
    cpu0 = _cpu_s(pid) if pid else None
    rig_pids = [os.getpid(), procs.procs[0].pid] if procs else []
    rig_cpu0 = sum(_cpu_s(p) for p in rig_pids)
    state = {"live": 0, "done": 0, "failed": 0, "peak": 0, "refused": 0}
    results: dict[str, Any] = {}
    rss_samples: list[tuple[float, float]] = []
    conn = aiohttp.TCPConnector(limit=0)
    pacer = FramePacer()  # one timer sends every caller's frames: the rig's cost, not the bridge's
    t_start = loop.time()
    clock_start = clock()  # t_start on the stamps' clock

    async def one(plan: CallPlan, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(max(0.0, t_start + plan.start_at - loop.time()))
        caller = plan.caller(media_url, {"tenant": opts.tenant}, opts.delay_ms, taps.get(plan.index), pacer)
        state["live"] += 1
        state["peak"] = max(state["peak"], state["live"])
        try:
            results[plan.call_sid] = await caller.run(plan.frames, hangup_after_s=plan.hangup_after(plan.hangup_s),
                                                      session=http)
            state["done"] += 1
        except aiohttp.WSServerHandshakeError as exc:
            # a full bridge refusing the upgrade (MOSBRIDGE_MAX_CALLS, loop lag) is admission, not failure
            state["refused" if exc.status == 503 else "failed"] += 1
        except Exception:  # a failed call is a finding, not a crash of the harness
            state["failed"] += 1
        finally:
            state["live"] -= 1

    # all calls up: after the ramp, or once the first calls to arrive could have hung up
    steady_from = (opts.call_seconds if opts.rate is not None else opts.ramp_s) + 1.0
    steady_to = opts.duration_s - 1.0
    has_steady = steady_to - steady_from >= 2.0  # a window long enough to read
    lag_buckets: list[dict[float, float]] = []
    window_misses: list[dict[str, int]] = []

    async def progress(http: aiohttp.ClientSession) -> None:
        nonlocal rss_peak
        while True:
            await asyncio.sleep(1.0)
            t = loop.time() - t_start
            at_edge = has_steady and len(lag_buckets) < 2 and t >= (steady_from if not lag_buckets else steady_to)
            # read /stats only when its figures are used: the peers bench_peers sets mosbridge
            # beside have no such endpoint, so the rig's watching must not cost mosbridge alone
            stats = await _stats(http, stats_url) if at_edge or opts.progress is not None else None
            if at_edge:
                note_edge(stats, await _lag_buckets(http, metrics_url), lag_buckets, window_misses)
            if pid:
                rss = _rss_mb(pid)
                rss_peak = max(rss_peak, rss)
                rss_samples.append((loop.time() - t_start, rss))
            if opts.progress is not None and stats:
                i, o = stats["inbound"], stats["outbound"]
                opts.progress(
                    f"t={loop.time() - t_start:5.1f}s calls live {state['live']}/{len(plans)} done {state['done']} "
                    f"failed {state['failed']} | p99 in {i['bridge_latency_ms']['p99']:.2f} ms "
                    f"out {o['bridge_latency_ms']['p99']:.2f} ms | "
                    f"loop lag p99 {stats['event_loop_lag_ms']['p99']:.1f} ms | "
                    f"misses {i['deadline_misses'] + o['deadline_misses']}")

    async with aiohttp.ClientSession(connector=conn) as http:
        ticker = asyncio.create_task(progress(http))
        try:
            with no_full_collections():
                await asyncio.wait_for(asyncio.gather(*(one(p, http) for p in plans)), opts.run_s + 30.0)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        wall = loop.time() - t_start
        cpu = (_cpu_s(pid) - cpu0) if pid and cpu0 is not None else None
        rig_cpu = sum(_cpu_s(p) for p in rig_pids) - rig_cpu0
        await asyncio.sleep(0.5)  # let the bridge's store writer catch up
        stats = await _stats(http, stats_url)

    options = {k: v for k, v in opts.__dict__.items() if k != "progress"}
    out = LoadResult(options=options, wall_s=wall, rss_samples=rss_samples)
    out.calls = {"started": len(plans), "completed": 0, "failed": state["failed"]}
    out.refused = state["refused"]
    out.peak_live_calls = state["peak"]
    if opts.rate is not None:
        lo, hi = count_bounds(opts.rate, opts.duration_s, opts.arrivals)
        out.arrivals = {"process": opts.arrivals, "rate": opts.rate, "duration_s": opts.duration_s,
                        "expected": opts.rate * opts.duration_s, "bounds": [lo, hi], "count": len(plans)}
    if view_missing is not None:
        view = not_measured(view_missing)
    else:
        assert stamps_path is not None
        window = (clock_start + steady_from, clock_start + steady_to) if has_steady else None
        view = await _caller_view(stamps_path, stamps_from, taps, run_nonce(run_id), window)
    out.caller_view = view.to_dict()
    out.messages = {"caller_sent": sum(r.messages_sent for r in results.values()),
                    "caller_received": sum(r.messages_received for r in results.values()),
                    **{k: view.counts[k] for k in ("ai_received", "ai_sent") if k in view.counts}}
    out.frames = {"caller_sent": sum(r.frames_sent for r in results.values()),
                  "caller_received": sum(r.media_received for r in results.values())}
    bridge_figures(out, stats, lag_buckets, window_misses)
    turns = [x * 1000.0 for r in results.values() for x in r.turn_latency_s]
    out.caller_turn_latency_ms = _percentiles(turns) or None
    call_seconds = sum(len(p.frames) and (p.frames[-1].send_at + FRAME_S) for p in plans)
    out.call_seconds = call_seconds
    if cpu is not None:
        out.bridge_cpu_pct = 100.0 * cpu / wall
        out.bridge_cpu_ms_per_call_second = 1000.0 * cpu / call_seconds if call_seconds else None
    if rig_pids and procs is not None:
        out.rig_cpu_pct = 100.0 * rig_cpu / wall / max(1, len(procs.rig_cpus))
    if pid and rss_idle is not None:
        out.rss_mb = {"idle": rss_idle, "peak": rss_peak}
        out.rss_mb_per_call = (rss_peak - rss_idle) / max(1, opts.calls if opts.rate is None else state["peak"])
    out.mos, out.calls["completed"] = mos_from_reports(plans, opts, db_url, set(results))
    return out


def note_edge(stats: dict[str, Any] | None, buckets: dict[float, float] | None,
              lag_buckets: list[dict[float, float]], window_misses: list[dict[str, int]]) -> None:
    """One edge of the steady window: the lag histogram and the deadline misses read there (both, or
    neither when a read failed), for ``bridge_figures``."""
    if buckets is not None and stats is not None:
        lag_buckets.append(buckets)
        window_misses.append({d: stats[d]["deadline_misses"] for d in ("inbound", "outbound")})


def bridge_figures(out: LoadResult, stats: dict[str, Any] | None, lag_buckets: list[dict[float, float]],
                   window_misses: list[dict[str, int]]) -> None:
    """Into ``out``: the bridge's own figures from its ``/stats`` after the run, and with the lag
    histogram and deadline misses read at the steady window's two edges, the window's."""
    if stats:
        for d in ("inbound", "outbound"):
            out.frames[f"bridge_{d}"] = stats[d]["frames"]
            out.deadline_misses[d] = stats[d]["deadline_misses"]
            out.bridge_latency_ms[d] = stats[d]["bridge_latency_ms"]
        out.event_loop_lag_ms = stats.get("event_loop_lag_ms")
        out.gc_pause_ms = stats.get("gc_pause_ms")
    if len(lag_buckets) == 2 and len(window_misses) == 2:
        out.steady_loop_lag = steady_lag(lag_buckets[0], lag_buckets[1])
        out.steady_deadline_misses = {d: window_misses[1][d] - window_misses[0][d] for d in window_misses[0]}


def mos_from_reports(plans: list[CallPlan], opts: LoadOptions, db_url: str | None,
                     answered: set[str]) -> tuple[dict[str, Any], int]:
    """The stored reports' MOS against each plan's ground truth (``expected_mos``) for the calls
    whose callers finished (``answered``: call SIDs), and how many calls ended on ``stop``."""
    reported: list[float] = []
    expected: list[float] = []
    errors: list[float] = []
    saturated = completed = 0
    if db_url:
        store = open_store(db_url)
        for plan in plans:
            rep = store.get(plan.call_sid)
            if rep is None:
                continue
            if rep.get("end_reason") == "stop":
                completed += 1
            saturated += bool(rep.get("bridge_host", {}).get("loop_lag", {}).get("saturated"))
            mos = rep.get("mos")
            if mos is None:  # a fallback report: the bridge could not score the call
                continue
            reported.append(mos)
            if plan.call_sid in answered:
                expected.append(expected_mos(plan, opts))
                errors.append(abs(mos - expected[-1]))
    return ({"reported": _percentiles(reported), "expected": _percentiles(expected),
             "mean_abs_error": sum(errors) / len(errors) if errors else None, "reports": len(reported),
             "reports_flagged_saturated": saturated}, completed)


def _view_missing(opts: LoadOptions, stamps_path: Path | None) -> str | None:
    """Why the callers' view cannot be measured in this run (None: it can)."""
    if opts.ai_format != "pcmu":
        return f"{opts.ai_format} is transcoded: the bytes differ on the two sides, so frames cannot be matched"
    if stamps_path is None:
        return "no stand-in stamps: run the stand-in behind --target with --stamps FILE and pass --stand-in-stamps FILE"
    return None


async def _caller_view(path: Path, offset: int, taps: dict[int, TaggedCallerTap], nonce: int,
                       steady: tuple[float, float] | None) -> CallerView:
    """Read the stand-in's records of this run, written every ``StampLog.interval_s`` and as its
    sessions end: wait one interval, then (up to ``STAMPS_WAIT_S``) until every call that ran
    has its session there."""
    records: list[dict[str, Any]] = []
    want = {i for i, t in taps.items() if t.sent_at}
    await asyncio.sleep(StampLog.interval_s)  # the stand-in's next write has the last stamps
    deadline = time.monotonic() + STAMPS_WAIT_S
    while True:
        new, offset = read_stamps(path, offset)
        records += new
        seen = {c for r in records for n, c, _, _ in r["inputs"] if n == nonce}
        if want <= seen or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    return caller_view(taps, nonce, records, steady)


async def _lag_buckets(http: aiohttp.ClientSession, url: str) -> dict[float, float] | None:
    """The bridge's event-loop lag histogram from ``/metrics``: cumulative count by upper bound."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
            if r.status == 200:
                text = await r.text()
                return {float(s.labels["le"]): s.value
                        for fam in text_string_to_metric_families(text) if fam.name == LAG_METRIC
                        for s in fam.samples if s.name == LAG_METRIC + "_bucket"} or None
    return None


def steady_lag(before: dict[float, float], after: dict[float, float]) -> dict[str, float] | None:
    """Loop lag between two scrapes of its histogram (p99 as Prometheus' ``histogram_quantile``
    gives it, share of ticks over 5 and 20 ms)."""
    bounds = sorted(after)
    figures = lag_figures(bounds, [after[b] - before.get(b, 0.0) for b in bounds])
    return None if figures is None else {k: float(v) for k, v in asdict(figures).items()}


async def _stats(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
            if r.status == 200:
                data: dict[str, Any] = await r.json()
                return data
    return None


# ----------------------------------------------------------------------------------- find-max

LAG_METRIC = "mosbridge_event_loop_lag_seconds"
FIND_MAX_STEPS = (25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
CLEAN_P99_MS = 5.0


def is_clean(r: LoadResult) -> bool:
    """No call failed, p99 <= 5 ms for the bridge-added latency, and, once all calls are up, no
    deadline missed and the event loop's lag p99 <= 5 ms (the wait before the bridge reads a
    frame, which its stamps miss). The ramp's burst of call setups is not what a pod sustains;
    its misses stay in ``deadline_misses``."""
    lag = r.steady_loop_lag["p99_ms"] if r.steady_loop_lag else (r.event_loop_lag_ms or {}).get("p99")
    if r.calls.get("failed") or not r.bridge_latency_ms or lag is None:
        return False
    misses = sum((r.deadline_misses if r.steady_deadline_misses is None else r.steady_deadline_misses).values())
    p99 = max(v["p99"] for v in r.bridge_latency_ms.values())
    return misses == 0 and p99 <= CLEAN_P99_MS and lag <= CLEAN_P99_MS


async def find_max(opts: LoadOptions) -> tuple[int, list[LoadResult]]:
    """Ramp the call count until a run is not clean (:func:`is_clean`); return the highest clean N."""
    best, runs = 0, []
    for n in FIND_MAX_STEPS:
        r = await run_load(replace(opts, calls=n, ramp_s=max(opts.ramp_s, n / 50.0)))
        runs.append(r)
        if opts.progress is not None:
            opts.progress(f"find-max: {n} calls -> {'clean' if is_clean(r) else 'NOT clean'}")
        if not is_clean(r):
            break
        best = n
    return best, runs
