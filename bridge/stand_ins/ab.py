"""A measured A/B of the AI-side formats (``pcmu``, ``pcm24k``, ``opus16k``) on loopback.

For each format the same caller audio goes through a real call on this machine: a simulated
Twilio caller (:class:`bridge.stand_ins.twilio_caller.SimulatedCaller`, paced in real time) talks to an in-process
bridge (:func:`bridge.live.server.serve`) whose AI side is a local stand-in in echo mode
(:class:`bridge.stand_ins.realtime_ws.FakeRealtimeServer` over WebSocket for ``pcmu``/``pcm24k``,
:class:`bridge.stand_ins.realtime_webrtc.FakeRealtimeWebRtcServer` over WebRTC for ``opus16k``). The
stand-in's server VAD ends the caller's turn and answers with the utterance it heard, so the echo
the caller hears has crossed the whole chain twice: caller mu-law -> AI format -> the stand-in
decodes -> re-encodes (the session format, or Opus on the track) -> bridge -> caller mu-law.

Three measurements per format, deliberately not the same quantity:

- **E-model** (ITU-T G.107): the MOS, R and dominant impairment of the report the bridge wrote
  for the call: its network + codec estimate of what a real caller would get (assumed PSTN delay,
  the G.113 Ie of the format, loss and jitter measured on loopback, so ~none).
- **PESQ** (ITU-T P.862, narrowband MOS-LQO, 8 kHz, the ``pesq`` package): the echo as heard
  against the utterance as sent, after :func:`align`. It scores this loopback round trip through
  both directions of the chain and the stand-in's own re-encoding, which a real AI's answer never
  crosses in that form, so it is a ranking of chains, not a prediction of the call's MOS.
- **Round trip** (:func:`round_trip_ms`): from the alignment and the caller's clock, the time the
  chain takes there and back with an AI that answers the instant its VAD ends the turn; and the
  bridge's own latency per direction (p50/p99 of the report's ``bridge_latency_ms``).

Input is the caller's side only: a capture (its ``twilio_in`` media payloads, in chunk order) or a
16-bit mono WAV at any rate (band-limited to 8 kHz by FFT truncation, then mu-law). It is shaped
into one utterance the stand-in's VAD hears as one turn (:func:`shape_utterance`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import tempfile
import uuid
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal

import aiohttp
import numpy as np
import numpy.typing as npt

from bridge.codecs.g711 import FRAME_BYTES, SILENCE_FRAME, Int16Array, ulaw_decode, ulaw_encode
from bridge.core.report_json import StoredReport
from bridge.live.server import Bridge, serve
from bridge.live.settings import Settings
from bridge.ops.store import open_store
from bridge.protocols.capture import CaptureError, read_capture
from bridge.stand_ins.realtime_webrtc import FakeRealtimeWebRtcServer
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer, FakeRealtimeSession, rms_dbfs
from bridge.stand_ins.twilio_caller import FRAME_S, ScheduledFrame, SimulatedCaller, TwilioPlayout

FORMATS: Final = ("pcmu", "pcm24k", "opus16k")
RATE: Final = 8000
FRAME: Final = FRAME_BYTES  # 20 ms of mu-law at 8 kHz, one byte per sample
VAD_THRESHOLD_DBFS: Final = FakeRealtimeConfig().threshold_dbfs
QUIET_MARGIN_DB: Final = 3.0
MAX_PAUSE_FRAMES: Final = 20  # 400 ms: the stand-in ends a turn after 500 ms below its threshold
EDGE_FRAMES: Final = 10  # up to 200 ms of the input's own quiet kept before and after the speech
LEAD_IN_S: Final = 0.6  # silence before the utterance while the AI leg (WebRTC: ICE + DTLS) comes up
VAD_SILENCE_S: Final = 0.5  # the stand-in's server VAD default silence_duration_ms
PREFIX_PADDING_S: Final = 0.3  # ... and prefix_padding_ms, replayed at the head of the echo
ECHO_MARGIN_S: Final = 0.8  # room for the round trip before hanging up
DEFAULT_MAX_SECONDS: Final = 20.0
LOADED_JITTER_MS: Final = 2.0  # loopback jitter is ~0.5 ms on an idle machine
CALL_SID_PREFIX: Final = "CAab"
NOTE: Final = ("E-model: the bridge's ITU-T G.107 estimate of the call (network + codec impairments, assumed "
               "PSTN delay). PESQ: ITU-T P.862 of this loopback echo, both directions of the chain plus the "
               "stand-in's re-encoding. Not the same quantity: compare each column across formats, not the "
               "columns with each other.")

Float64Array = npt.NDArray[np.float64]


class AbError(ValueError):
    """Input that cannot be measured, or a run that went wrong; one line for the user."""


class Interrupted(Exception):
    """SIGINT or SIGTERM during a call (the in-process bridge takes those signals to drain)."""


# ---------------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Utterance:
    """The caller audio every format is fed: 8 kHz mu-law, whole 20 ms frames.

    ``source`` says what it came from; ``pauses_shortened`` and ``truncated`` say how
    :func:`shape_utterance` changed it."""

    ulaw: bytes
    source: str
    pauses_shortened: int = 0
    truncated: bool = False

    @property
    def samples(self) -> Int16Array:
        return ulaw_decode(self.ulaw)

    @property
    def seconds(self) -> float:
        return len(self.ulaw) / RATE


def fft_resample(x: Int16Array, src_rate: int, dst_rate: int) -> Int16Array:
    """Ideal band-limited resampling by FFT truncation or zero-padding (offline, whole signal);
    clipped to 16 bits."""
    if src_rate == dst_rate or x.size == 0:
        return np.asarray(x, dtype=np.int16)
    n_out = max(1, round(x.size * dst_rate / src_rate))
    spec = np.fft.rfft(x.astype(np.float64))
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    m = min(spec.size, out.size)
    out[:m] = spec[:m]
    y = np.fft.irfft(out, n_out) * (n_out / x.size)
    return np.asarray(np.clip(np.round(y), -32768, 32767), dtype=np.int16)


def read_wav_ulaw(path: Path) -> tuple[bytes, str]:
    """A 16-bit mono WAV as 8 kHz mu-law (raises AbError)."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AbError(f"{path}: not a readable WAV file ({exc})") from None
    if channels != 1 or width != 2:
        raise AbError(f"{path}: need 16-bit mono WAV, got {channels} channel(s) x {8 * width} bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise AbError(f"{path}: the WAV file has no samples")
    return ulaw_encode(fft_resample(samples, rate, RATE)), f"WAV {rate} Hz, {samples.size / rate:.2f} s"


def read_capture_ulaw(path: Path) -> tuple[bytes, str]:
    """The caller audio of a capture or plain Twilio log: the ``twilio_in`` media payloads in
    chunk order, a repeated chunk taken once (raises AbError)."""
    try:
        capture = read_capture(path)
    except OSError as exc:
        raise AbError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AbError(f"{path}: neither a WAV file nor a capture (not UTF-8 text)") from None
    except CaptureError as exc:
        raise AbError(f"{path}: {exc}") from None
    chunks: dict[int, bytes] = {}
    for rec in capture.records:
        if rec.dir != "twilio_in" or not rec.text:
            continue
        try:
            msg = json.loads(rec.text)
            media = msg["media"] if msg.get("event") == "media" else None
            if media is None:
                continue
            chunk = int(media["chunk"])
            payload = base64.b64decode(media["payload"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise AbError(f"{path}: line {rec.line_no}: a media message without a usable chunk and "
                          "base64 payload") from None
        chunks.setdefault(chunk, payload)
    if not chunks:
        raise AbError(f"{path}: no caller audio (no twilio_in media messages)")
    return b"".join(chunks[c] for c in sorted(chunks)), f"capture, {len(chunks)} media frames"


def load_input(path: str | Path, max_seconds: float = DEFAULT_MAX_SECONDS) -> Utterance:
    """Read INPUT (WAV if it starts with ``RIFF``, else a capture) and shape it into one
    utterance (raises AbError)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise AbError(f"cannot read {p}: {exc.strerror or exc}") from None
    ulaw, source = read_wav_ulaw(p) if magic == b"RIFF" else read_capture_ulaw(p)
    return shape_utterance(ulaw, source, max_seconds)


def shape_utterance(ulaw: bytes, source: str = "", max_seconds: float = DEFAULT_MAX_SECONDS) -> Utterance:
    """One turn for the stand-in's server VAD (energy over 20 ms windows, ``VAD_THRESHOLD_DBFS``,
    turn over after 500 ms below it).

    A frame is quiet below the threshold + ``QUIET_MARGIN_DB`` (so the VAD, which may see a level a
    little off after the chain, calls at most those frames silent). Leading and trailing quiet is
    cut to ``EDGE_FRAMES``; a pause longer than ``MAX_PAUSE_FRAMES`` inside the speech is shortened
    to it (a capture of a real call holds the caller's silence while the AI talked, and an
    utterance split into several turns would be answered, and barged in on, several times); the
    result is cut to ``max_seconds``. Raises AbError if no frame is loud enough for the VAD."""
    ulaw = ulaw[: len(ulaw) // FRAME * FRAME]
    frames = [ulaw[i:i + FRAME] for i in range(0, len(ulaw), FRAME)]
    loud = [rms_dbfs(ulaw_decode(f)) >= VAD_THRESHOLD_DBFS for f in frames]
    quiet = [rms_dbfs(ulaw_decode(f)) < VAD_THRESHOLD_DBFS + QUIET_MARGIN_DB for f in frames]
    if not any(loud):
        raise AbError(f"no speech: no 20 ms frame reaches {VAD_THRESHOLD_DBFS:g} dBFS, so the stand-in's VAD "
                      "would never hear a turn")
    first = max(0, loud.index(True) - EDGE_FRAMES)
    last = min(len(frames), len(loud) - loud[::-1].index(True) + EDGE_FRAMES)
    kept: list[bytes] = []
    run: list[bytes] = []
    shortened = 0
    for i in range(first, last):
        if quiet[i]:
            run.append(frames[i])
            continue
        if len(run) > MAX_PAUSE_FRAMES and kept:
            shortened += 1
            run = run[:MAX_PAUSE_FRAMES // 2] + run[len(run) - (MAX_PAUSE_FRAMES - MAX_PAUSE_FRAMES // 2):]
        kept.extend(run)
        run = []
        kept.append(frames[i])
    kept.extend(run[:EDGE_FRAMES])
    limit = max(1, int(max_seconds / FRAME_S))
    truncated = len(kept) > limit
    return Utterance(b"".join(kept[:limit]), source, shortened, truncated)


# ---------------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class Alignment:
    """``degraded[lag + i]`` lines up with ``reference[i]`` (lag may be negative); ``peak`` is the
    normalized cross-correlation there, in [-1, 1]."""

    lag: int
    peak: float


def align(reference: Int16Array, degraded: Int16Array) -> Alignment:
    """Where ``reference`` sits in ``degraded``, by cross-correlation.

    c(k) = sum_i ref[i] * deg[k + i] for every lag k at which the two overlap (-(n-1)..m-1),
    computed by FFT; the lag is the largest positive c(k) (the chain keeps polarity, so a large
    negative c is not a match). Integer lags: 0.125 ms at 8 kHz, finer than any delay quoted.
    ``peak`` = c(lag) / (|ref| * |deg over the n samples at the lag|), 1 for an exact scaled copy.
    The echo is one contiguous replay of the utterance, so one global lag is the right model; a
    chain whose delay drifts within the echo would show as a lower peak (and a lower PESQ)."""
    ref = np.asarray(reference, dtype=np.float64)
    deg = np.asarray(degraded, dtype=np.float64)
    n, m = ref.size, deg.size
    if n == 0 or m == 0:
        return Alignment(0, 0.0)
    size = 1 << (n + m - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([np.arange(m), np.arange(-(n - 1), 0)])
    values = np.concatenate([c[:m], c[size - (n - 1):]]) if n > 1 else c[:m]
    best = int(np.argmax(values))
    lag = int(lags[best])
    segment = aligned_segment(degraded, lag, n).astype(np.float64)
    norm = math.sqrt(float(np.dot(ref, ref)) * float(np.dot(segment, segment)))
    peak = float(np.dot(ref, segment) / norm) if norm > 0 else 0.0
    return Alignment(lag, peak)


def aligned_segment(degraded: Int16Array, lag: int, n: int) -> Int16Array:
    """``degraded[lag:lag + n]``, zero-filled where that runs off either end (trimmed to the
    reference's length, as P.862 compares two signals of one length)."""
    out = np.zeros(n, dtype=np.int16)
    lo, hi = max(lag, 0), min(lag + n, degraded.size)
    if hi > lo:
        out[lo - lag:hi - lag] = degraded[lo:hi]
    return out


def pesq_nb(reference: Int16Array, degraded: Int16Array) -> float:
    """ITU-T P.862 narrowband MOS-LQO at 8 kHz (the ``pesq`` package; raises AbError if it is
    missing or P.862 finds no utterance)."""
    try:
        from pesq import pesq
    except ImportError:
        raise AbError("the pesq package is needed for the A/B: pip install pesq") from None
    try:
        return float(pesq(RATE, reference.astype(np.float64), degraded.astype(np.float64), "nb"))
    except Exception as exc:  # pesq raises its own PesqError subclasses and plain ValueErrors
        raise AbError(f"PESQ failed: {exc}") from None


# ---------------------------------------------------------------------------------- timing


def heard_at(frame_starts: Sequence[float], k: int) -> float:
    """When played sample ``k`` was heard: its frame's start + its offset in the frame
    (extrapolated at 8 kHz before the first sample and after the last)."""
    if not frame_starts:
        raise AbError("the caller heard nothing: no echo came back")
    if k < 0:
        return frame_starts[0] + k / RATE
    i = min(k // FRAME, len(frame_starts) - 1)
    return frame_starts[i] + (k - i * FRAME) / RATE


def round_trip_ms(heard_s: float, sent_s: float, held_s: float) -> float:
    """The chain's round trip, from the alignment.

    ``sent_s``: when the caller sent the frame that starts the utterance; ``heard_s``: when it
    heard that sample in the echo (the alignment lag placed on the playout clock; one clock for
    both). The stand-in replays ``held_s`` of audio (its VAD's utterance: prefix padding, speech,
    the 500 ms of silence that ended the turn) and starts the moment the frame carrying its last
    20 ms arrives. With frames sent every 20 ms that frame left ``held_s - 20 ms`` after the frame
    holding the echo's head, so

        round trip = heard_s - sent_s - held_s + 20 ms

    is the time from the caller sending the last frame the echo reproduces to hearing the echo
    begin: both directions' transport, transcoding and algorithmic delay (FIRs, Opus lookahead,
    WebRTC jitter buffers), the VAD's decision on its 20 ms windows and Twilio's playout start,
    with an AI that answers the instant the turn ends (a real one adds its think time). A
    pass-through relay with instant transport would measure 0."""
    return (heard_s - sent_s - held_s + FRAME_S) * 1000.0


# ---------------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class Latency:
    p50: float | None
    p99: float | None


@dataclass(frozen=True)
class FormatResult:
    """One format's figures (see the module docstring). ``jitter_ms`` and ``loss_pct`` are the
    report's inbound figures: on loopback they are ~0, unless the machine stalled the caller's
    pacing, which then shows in the E-model (and in ``dominant_impairment``). ``notes`` flag
    anything that makes the figures doubtful (an incomplete echo, the turn heard as several, the
    AI leg up late)."""

    format: str
    emodel_mos: float
    r: float
    band: str
    dominant_impairment: str
    pesq: float
    xcorr_peak: float
    round_trip_ms: float
    bridge_latency_ms: dict[str, Latency]
    jitter_ms: float | None
    loss_pct: float | None
    echo_s: float
    call_sid: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["bridge_latency_ms"] = {k: asdict(v) for k, v in self.bridge_latency_ms.items()}
        return out


def _settings(fmt: str, workdir: Path, openai_url: str, calls_url: str | None) -> Settings:
    """Every setting explicit (the defaults), so the process environment (a webhook URL, a
    database, another PSTN delay) cannot leak into the A/B."""
    values: dict[str, Any] = {name: info.get_default(call_default_factory=True)
                              for name, info in Settings.model_fields.items()}
    values.update({
        "host": "127.0.0.1", "port": 0, "validate_twilio_signature": False, "openai_url": openai_url,
        "openai_api_key": "sk-local", "ai_format": fmt, "database_url": f"sqlite:///{workdir / (fmt + '.db')}",
        "spool_path": str(workdir / f"{fmt}.spool.jsonl"), "capture_dir": str(workdir / "captures"),
        "capture_per_call": False, "alerts": False, "ping_interval_s": 0.5, "drain_timeout_s": 5.0,
        "pseudonym_key": "mosbridge-ab",
    })
    if calls_url is not None:
        values.update({"openai_calls_url": calls_url, "webrtc_ice_addresses": "127.0.0.1"})
    return Settings(**values)


@contextlib.asynccontextmanager
async def _bridge(settings: Settings) -> AsyncIterator[tuple[Bridge, asyncio.Event]]:
    """A bridge serving on loopback, and the event that stops it (set by ``serve`` on SIGINT or
    SIGTERM too)."""
    ready: asyncio.Future[Bridge] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, on_ready=ready.set_result, stop=stop))
    try:
        done, _ = await asyncio.wait([ready, task], timeout=10.0, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            raise AbError(f"the bridge did not start: {task.exception() if task.done() else 'timeout'}")
        yield ready.result(), stop
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 30.0)


def plan(utt: Utterance) -> tuple[list[ScheduledFrame], int, float]:
    """(frames, index of the utterance's first frame, hang-up time): lead-in silence, the
    utterance, then silence for the VAD to end the turn and the whole echo to play back."""
    lead = round(LEAD_IN_S / FRAME_S)
    tail = math.ceil((VAD_SILENCE_S + PREFIX_PADDING_S + utt.seconds + VAD_SILENCE_S + ECHO_MARGIN_S) / FRAME_S)
    body = [utt.ulaw[i:i + FRAME] for i in range(0, len(utt.ulaw), FRAME)]
    payloads = [SILENCE_FRAME] * lead + body + [SILENCE_FRAME] * tail
    frames = [ScheduledFrame(i * 20, i * FRAME_S, base64.b64encode(p).decode("ascii")) for i, p in enumerate(payloads)]
    return frames, lead, len(frames) * FRAME_S + 0.2


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _latency(report: StoredReport, direction: Literal["inbound", "outbound"]) -> Latency:
    figures = (report.get(direction) or {}).get("bridge_latency_ms") or {}
    return Latency(_number(figures.get("p50")), _number(figures.get("p99")))


async def run_format(fmt: str, utt: Utterance, *, seed: int = 0, workdir: Path) -> FormatResult:
    """One loopback call with the AI side in ``fmt``; the report stays in ``workdir/<fmt>.db``."""
    if fmt not in FORMATS:
        raise AbError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
    config = FakeRealtimeConfig(echo=True, seed=seed, speed=8.0)
    call_sid = f"{CALL_SID_PREFIX}-{fmt}-{uuid.uuid4().hex[:12]}"
    frames, lead, hangup_s = plan(utt)
    async with contextlib.AsyncExitStack() as stack:
        ws = await stack.enter_async_context(FakeRealtimeServer(config))
        rtc = await stack.enter_async_context(FakeRealtimeWebRtcServer(config)) if fmt == "opus16k" else None
        settings = _settings(fmt, workdir, ws.url, rtc.url if rtc else None)
        async with _bridge(settings) as (bridge, stop), aiohttp.ClientSession() as http:
            caller = SimulatedCaller(f"ws://127.0.0.1:{bridge.bound_port}/media", stream_sid=f"MZab{fmt}",
                                     call_sid=call_sid, params={"tenant": "ab"},
                                     keep_messages=False)
            playout = caller.playout = TwilioPlayout(caller.stream_sid, frame_starts=[])
            call = asyncio.create_task(caller.run(frames, hangup_after_s=hangup_s, session=http))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([call, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call
                raise Interrupted(f"interrupted during the {fmt} call")
            try:
                result = call.result()
            except (aiohttp.ClientError, OSError) as exc:
                raise AbError(f"{fmt}: the simulated caller could not talk to the bridge: {exc}") from None
        session: FakeRealtimeSession | None = (rtc.calls[-1].session if rtc and rtc.calls
                                               else ws.sessions[-1] if ws.sessions else None)
    store = open_store(settings.database_url)
    try:
        report = store.get(call_sid)
    finally:
        store.close()
    if report is None:
        raise AbError(f"{fmt}: the bridge wrote no report for the call")
    if session is None or session.last_utterance_rate == 0:
        raise AbError(f"{fmt}: the stand-in never heard a turn (AI leg down? see the report's counters: "
                      f"{report.get('counters')})")
    notes: list[str] = []
    responses = len(session.responses)
    if responses != 1 or session.responses[0].get("status") != "completed":
        notes.append(f"the stand-in answered {responses} time(s), last status "
                     f"{session.responses[-1].get('status') if responses else None}: expected one completed echo")
    down = int((report.get("counters") or {}).get("frames_while_ai_down", 0))
    if down >= lead:
        notes.append(f"{down} caller frames arrived while the AI leg was down: the utterance was cut")
    if not result.played or len(result.sent_at) <= lead:
        raise AbError(f"{fmt}: no echo came back to the caller")
    ref = utt.samples
    played = ulaw_decode(result.played)
    alignment = align(ref, played)
    if alignment.lag + ref.size > played.size or alignment.lag < -ref.size // 2:
        notes.append("the echo did not cover the whole utterance")
    degraded = aligned_segment(played, alignment.lag, ref.size)
    if not playout.frame_starts or caller.t0 is None:
        raise AbError(f"{fmt}: the caller heard nothing: no echo came back")
    heard = heard_at(playout.frame_starts, alignment.lag) - caller.t0
    sent = result.sent_at[lead][1]
    held = session.last_utterance.size / session.last_utterance_rate
    inbound = report.get("inbound") or {}
    jitter, loss = _number(inbound.get("jitter_ms")), _number(inbound.get("loss_pct"))
    if (jitter or 0.0) > LOADED_JITTER_MS or (loss or 0.0) > 0.0:
        notes.append(f"loopback: the call measured {jitter or 0.0:.1f} ms jitter and {loss or 0.0:.2f} % loss, so "
                     "the machine held up real-time pacing and the E-model counts it; rerun on an idle machine")
    mos, r = report.get("mos"), report.get("r")
    if mos is None or r is None:
        raise AbError(f"{fmt}: the bridge could not score the call: {report.get('error')}")
    return FormatResult(
        format=fmt, emodel_mos=float(mos), r=float(r), band=str(report.get("band")),
        dominant_impairment=str(report.get("dominant_impairment")), pesq=pesq_nb(ref, degraded),
        xcorr_peak=alignment.peak, round_trip_ms=round_trip_ms(heard, sent, held),
        bridge_latency_ms={"inbound": _latency(report, "inbound"), "outbound": _latency(report, "outbound")},
        jitter_ms=jitter, loss_pct=loss,
        echo_s=played.size / RATE, call_sid=call_sid, notes=notes)


async def run_ab(utt: Utterance, formats: Sequence[str] = FORMATS, *, seed: int = 0,
                 workdir: Path | None = None) -> list[FormatResult]:
    """The formats one after the other (never in parallel: they would share the CPU and each
    other's timing). Reports go to ``workdir`` (a temporary directory when None)."""
    if workdir is not None:
        try:
            workdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AbError(f"cannot use {workdir}: {exc.strerror or exc}") from None
        return [await run_format(fmt, utt, seed=seed, workdir=workdir) for fmt in formats]
    with tempfile.TemporaryDirectory(prefix="mosbridge-ab-") as tmp:
        return [await run_format(fmt, utt, seed=seed, workdir=Path(tmp)) for fmt in formats]


# ---------------------------------------------------------------------------------- output


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(results: Sequence[FormatResult]) -> str:
    """The side-by-side table (Markdown, readable as is in a terminal)."""
    rows = ["| format | E-model MOS | R | dominant | PESQ MOS-LQO | round trip ms | bridge p99 in/out ms |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        lat = r.bridge_latency_ms
        rows.append(f"| {r.format} | {r.emodel_mos:.2f} | {r.r:.1f} | {r.dominant_impairment} | {r.pesq:.2f} | "
                    f"{r.round_trip_ms:.0f} | {_ms(lat['inbound'].p99)} / {_ms(lat['outbound'].p99)} |")
    return "\n".join(rows)


def to_json(input_name: str, utt: Utterance, results: Sequence[FormatResult]) -> dict[str, Any]:
    return {"input": input_name, "utterance_s": utt.seconds, "source": utt.source,
            "pauses_shortened": utt.pauses_shortened, "truncated": utt.truncated, "note": NOTE,
            "results": [r.to_dict() for r in results]}
