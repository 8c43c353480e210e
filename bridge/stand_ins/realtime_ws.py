"""A local stand-in for OpenAI Realtime (GA interface, WebSocket transport) for tests and load runs.

Event names and shapes follow the GA server/client reference
(developers.openai.com/api/reference/resources/realtime/server-events, .../client-events) and the
`openai` package's pydantic models under `openai.types.realtime` (RealtimeServerEvent /
RealtimeClientEvent unions); the tests validate every emitted event against them in strict mode.

Protocol logic lives in the sans-I/O `FakeRealtimeSession` (time passed in as `now`, randomness
from an injected `random.Random`); `FakeRealtimeServer` is the thin asyncio/websockets driver.

What is modelled:
  * `session.created` on connect, `session.update` deep-merged and echoed as `session.updated`;
    only audio/pcm (24 kHz), audio/pcmu and audio/pcma are accepted (the WebSocket formats).
  * Server VAD: RMS energy over 20 ms windows of the decoded input, on the audio's own sample
    clock (so it is deterministic); `threshold_dbfs` replaces the model's 0..1 `threshold`.
    `audio_start_ms` includes prefix_padding_ms; `audio_end_ms` includes silence_duration_ms.
  * Responses stream a synthetic speech-like signal as `response.output_audio.delta` in chunks of
    seeded random, non-20-ms-aligned durations, paced `speed` times faster than real time.
  * Barge-in (speech onset with interrupt_response) and `response.cancel` end the response with
    status "cancelled"; `conversation.item.truncate` is acknowledged and recorded.
  * Echo mode (`FakeRealtimeConfig.echo`): answers replay the caller's last utterance.
  * The same session in WebRTC mode (`transport="webrtc"`) backs the WebRTC stand-in,
    bridge/stand_ins/realtime_webrtc.py: audio in and out on a media track, output_audio_buffer.* events.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import functools
import json
import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bridge.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from bridge.stand_ins.stamp_log import SessionStamps, StampLog

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

Json = dict[str, Any]
Int16Array = npt.NDArray[np.int16]

REALTIME_PATH = "/v1/realtime"
VAD_WINDOW_MS = 20
SESSION_MAX_S = 3600.0
MANUAL_BUFFER_WINDOWS = 60 * 1000 // VAD_WINDOW_MS  # echo keeps at most the last 60 s of a manual turn
DEFAULT_TRANSCRIPT = "Hello, this is the Realtime stand-in speaking."

FORMAT_PCM: Json = {"type": "audio/pcm", "rate": 24000}
FORMAT_PCMU: Json = {"type": "audio/pcmu"}
FORMAT_PCMA: Json = {"type": "audio/pcma"}
# mangle_formats: what session.updated echoes instead of the requested format.
_MANGLED = {"audio/pcmu": FORMAT_PCMA, "audio/pcma": FORMAT_PCMU, "audio/pcm": FORMAT_PCMU}


def format_rate(fmt: Json) -> int:
    """Sample rate of a GA audio format: 8 kHz for G.711, 24 kHz for PCM16."""
    return 24000 if fmt.get("type") == "audio/pcm" else 8000


def format_bytes_per_sample(fmt: Json) -> int:
    return 2 if fmt.get("type") == "audio/pcm" else 1


def normalise_format(fmt: object) -> Json | None:
    """The canonical form of a supported GA audio format, or None if it is not supported."""
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    extra = set(fmt) - {"type", "rate"}
    if extra:
        return None
    if kind == "audio/pcm" and fmt.get("rate", 24000) == 24000:
        return dict(FORMAT_PCM)
    if kind in ("audio/pcmu", "audio/pcma") and "rate" not in fmt:
        return {"type": kind}
    return None


def decode_audio(data: bytes, fmt: Json) -> Int16Array:
    """Bytes in a GA audio format to 16-bit linear samples (PCM is little-endian)."""
    kind = fmt.get("type")
    if kind == "audio/pcmu":
        return ulaw_decode(data)
    if kind == "audio/pcma":
        return alaw_decode(data)
    return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)


def encode_audio(samples: Int16Array, fmt: Json) -> bytes:
    """16-bit linear samples to bytes in a GA audio format."""
    kind = fmt.get("type")
    if kind == "audio/pcmu":
        return ulaw_encode(samples)
    if kind == "audio/pcma":
        return alaw_encode(samples)
    return np.asarray(samples, dtype="<i2").tobytes()


@functools.lru_cache(maxsize=16)
def speech_like(duration_ms: int, rate: int, peak: float = 0.4) -> Int16Array:
    """A deterministic voiced-speech stand-in: 200 Hz fundamental with 1/k harmonics up to 3 kHz,
    amplitude-modulated at a 4 Hz syllable rate (never fully silent, so VAD sees one utterance).
    Cached (every response of a load run asks for the same one), so the array is read-only."""
    n = duration_ms * rate // 1000
    t = np.arange(n, dtype=np.float64) / rate
    f0 = 200.0
    wave = np.zeros(n, dtype=np.float64)
    for k in range(1, int(3000 // f0) + 1):
        wave += np.sin(2 * np.pi * f0 * k * t + 0.3 * k) / k
    wave /= np.max(np.abs(wave)) if n else 1.0
    envelope = 0.55 - 0.45 * np.cos(2 * np.pi * 4.0 * t)
    out = np.round(wave * envelope * peak * 32767).astype(np.int16)
    out.setflags(write=False)
    return out


def rms_dbfs(samples: Int16Array) -> float:
    if samples.size == 0:
        return -math.inf
    # float(dot) is the sum of squares without a temporary array per 20 ms window (the stand-in
    # runs this for every caller frame of every call in a load test).
    x = samples.astype(np.float64)
    rms = math.sqrt(float(np.dot(x, x)) / samples.size)
    return -math.inf if rms == 0 else 20 * math.log10(rms / 32768.0)


_APPEND_SHAPES = tuple((head, len(head)) for head in (
    '{"type":"input_audio_buffer.append","audio":"', '{"type": "input_audio_buffer.append", "audio": "'))


def _plain_append_audio(text: str) -> str | None:
    """The audio of an ``input_audio_buffer.append`` written as bridges write it (compact or
    ``json.dumps`` spacing, no event id), without a JSON parse: it comes every 20 ms of every
    call of a load run. The string between the quotes holds no quote or escape, so it is what
    ``json.loads`` would give; anything else (None) takes the full parse."""
    if not text.endswith('"}'):
        return None
    for head, n in _APPEND_SHAPES:
        if text.startswith(head):
            audio = text[n:-2]
            return None if '"' in audio or "\\" in audio else audio
    return None


def deep_merge(base: Json, patch: Json) -> Json:
    """`patch` applied onto a copy of `base`: dicts merge recursively, anything else (null too) replaces."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class FakeRealtimeConfig:
    """Behaviour of the stand-in. Test hooks: `mangle_formats` (session.updated echoes a format
    other than the one asked for), `session_expire_after_s` (error `session_expired`, then close,
    like the real 60-minute cap), `close_after_events` (drop the connection after N client events),
    `stall_after_deltas` (a response stops after N audio deltas and never finishes).

    `echo`: every response's audio is the caller's last committed utterance (the input audio from
    `audio_start_ms` to `audio_end_ms`, prefix padding and trailing silence included) exactly as
    the stand-in decoded it, instead of the synthetic speech, so what the caller hears back has
    crossed the bridge's whole chain in both directions (a codec A/B measures that with PESQ).
    Over WebSocket it is re-encoded in the session's output format (resampled with
    `audioop.ratecv` only when input and output rates differ, which adds its own distortion: use
    the same format both ways for measurements); over WebRTC it is played on the track as decoded.
    A response before any utterance has no audio."""

    api_key: str | None = None
    model: str = "gpt-realtime"
    voice: str = "alloy"
    instructions: str = "You are a helpful voice assistant (local stand-in)."
    transcript: str = DEFAULT_TRANSCRIPT
    response_ms: int = 2000
    speed: float = 4.0
    min_chunk_ms: int = 50
    max_chunk_ms: int = 400
    threshold_dbfs: float = -40.0
    seed: int = 0
    mangle_formats: bool = False
    session_expire_after_s: float | None = None
    close_after_events: int | None = None
    stall_after_deltas: int | None = None
    echo: bool = False


class SessionConfigError(ValueError):
    """A session configuration the stand-in rejects, as OpenAI would (code, message, param)."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


@dataclass
class _Response:
    id: str
    item_id: str
    started: float
    fmt: Json
    audio: bytes
    chunks: list[tuple[int, int]]  # (start, end) byte offsets, in send order
    next_chunk: int = 0
    deltas_sent: int = 0
    bytes_sent: int = 0
    stalled: bool = False
    duration_ms: float = 0.0  # WebRTC: length of the audio queued for the track
    tagged: bool = False  # its audio carries AI tags and its deltas are stamped (SessionStamps)


@dataclass
class _Playout:
    """WebRTC: one response's audio in the server-side output audio buffer, read 20 ms at a time."""

    response_id: str
    item_id: str
    samples: Int16Array
    pos: int = 0
    started: bool = False


@dataclass
class _Vad:
    """Server-VAD state on the input sample clock."""

    pending: Int16Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    samples_in: int = 0  # samples consumed into 20 ms windows, at the input rate
    rate: int = 24000
    elapsed_ms: float = 0.0  # input audio time before the current rate began (format changes)
    speaking: bool = False
    silence_ms: float = 0.0
    item_id: str | None = None
    preroll: list[Int16Array] = field(default_factory=list)  # last prefix_padding_ms, while not speaking
    captured: list[Int16Array] = field(default_factory=list)  # the utterance (or manual buffer) so far


TRANSPORT_WEBSOCKET = "websocket"
TRANSPORT_WEBRTC = "webrtc"


class FakeRealtimeSession:
    """One Realtime connection, sans-I/O: `receive(text, now)`, `handle_timer(now)` at
    `get_timer()`, drain with `events_to_send()`. `closed` turns true when the driver should
    end the connection (`abort` says: without a close handshake, as on a dropped link).

    `transport="webrtc"` models the WebRTC interface (developers.openai.com/api/docs/guides/
    realtime-webrtc; the output_audio_buffer.* reference entries): caller audio arrives decoded from
    the media track through `feed_audio(samples, now)` at `track_rate` (mono), and
    `input_audio_buffer.append` is refused; response audio is not sent as
    `response.output_audio.delta` but queued in a server-side output audio buffer that the driver
    plays out with `next_output_frame(now)` every 20 ms. `output_audio_buffer.started` is sent
    when a response's first frame is read, `output_audio_buffer.stopped` once its last frame has
    played and its `response.done` has been sent (the reference: "emitted after the full response
    data has been sent to the client (response.done)"); generation still runs `speed` times faster
    than real time, so `response.done` normally precedes the end of playback. Speech onset with
    `interrupt_response` and the client's `output_audio_buffer.clear` empty the buffer
    (`output_audio_buffer.cleared`) and truncate the assistant item to what was played
    (`conversation.item.truncated`), since over WebRTC the server knows how much was heard.
    `initial_session` is the `session` object of the `/v1/realtime/calls` request, applied
    before `session.created` (raises SessionConfigError if the stand-in would reject it).
    `stamps` (load runs, pcmu only): note tagged caller frames and tag and stamp the answers."""

    def __init__(self, config: FakeRealtimeConfig, now: float, rng: random.Random,
                 model: str | None = None, epoch: float = 0.0, *, transport: str = TRANSPORT_WEBSOCKET,
                 track_rate: int = 48000, initial_session: Json | None = None,
                 stamps: SessionStamps | None = None) -> None:
        if transport not in (TRANSPORT_WEBSOCKET, TRANSPORT_WEBRTC):
            raise ValueError(f"unknown transport {transport!r}")
        self.config = config
        self.transport = transport
        self.webrtc = transport == TRANSPORT_WEBRTC
        self.track_rate = track_rate
        self.stamps = stamps
        self._rng = rng
        self._out: list[str] = []
        self._counter = 0
        self._started = now
        self._now = now
        self.closed = False
        self.abort = False
        self.client_events = 0
        self.received: list[str] = []  # every client event as sent, for tests to validate
        self.items: list[Json] = []
        self.truncations: list[Json] = []  # conversation.item.truncate requests accepted from the client
        self.server_truncations: list[Json] = []  # WebRTC: truncations the server made itself on a clear
        self.responses: list[Json] = []  # final response objects, as sent in response.done
        self._assistant_audio_ms: dict[str, float] = {}
        self._response: _Response | None = None
        self._audio_out = False
        self._playout: list[_Playout] = []
        self._stopped_after_done: str | None = None  # response whose audio drained before its response.done
        self.last_utterance: Int16Array = np.zeros(0, dtype=np.int16)
        self.last_utterance_rate = 0
        self.session: Json = self._default_session(model or config.model, epoch)
        if initial_session is not None:
            if "model" in initial_session and isinstance(initial_session["model"], str):
                self.session["model"] = initial_session["model"]
            self.session = self._merged_session(initial_session)
        self._vad = _Vad(rate=self._input_rate(self._input_format))
        self._input_buffer_ms = 0.0
        self._emit({"type": "session.created", "session": copy.deepcopy(self.session)})

    # -- driver interface -------------------------------------------------------------------

    def events_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    @property
    def has_events_to_send(self) -> bool:
        return bool(self._out)

    def get_timer(self) -> float | None:
        if self.closed:
            return None
        deadlines: list[float] = []
        if self.config.session_expire_after_s is not None:
            deadlines.append(self._started + self.config.session_expire_after_s)
        r = self._response
        if r is not None and not r.stalled:
            deadlines.append(self._chunk_deadline(r))
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        if self.closed:
            return
        expire = self.config.session_expire_after_s
        if expire is not None and now >= self._started + expire:
            self._error("session_expired", "Your session hit the maximum duration of 60 minutes.",
                        err_type="invalid_request_error")
            self.closed = True
            return
        r = self._response
        while r is not None and r is self._response and not r.stalled and now >= self._chunk_deadline(r):
            self._send_next_chunk(r)

    def feed_audio(self, samples: Int16Array, now: float) -> None:
        """WebRTC: caller audio decoded from the media track, mono at `track_rate`, in order and
        without gaps (the driver fills lost or missing packets with silence)."""
        if self.closed:
            return
        if not self.webrtc:
            raise RuntimeError("feed_audio is for the WebRTC transport; WebSocket audio comes as events")
        self._now = now
        self._ingest(np.asarray(samples, dtype=np.int16))
        self.handle_timer(now)

    def next_output_frame(self, now: float) -> Int16Array | None:
        """WebRTC: the next 20 ms (`track_rate // 50` samples) of the output audio buffer for the
        track, or None when there is nothing to play. Call it once per 20 ms of the track's clock;
        the call after a response's last frame is when that audio has finished playing."""
        if self.closed or not self.webrtc:
            return None
        self._now = now
        n = self.track_rate // 50
        out: Int16Array | None = None
        while self._playout:
            p = self._playout[0]
            if p.pos >= p.samples.size:
                self._playout.pop(0)
                self._drained(p)
                continue
            if not p.started:
                p.started = True
                self._emit({"type": "output_audio_buffer.started", "response_id": p.response_id})
            chunk = p.samples[p.pos:p.pos + n]
            p.pos += chunk.size
            out = chunk if chunk.size == n else np.concatenate([chunk, np.zeros(n - chunk.size, dtype=np.int16)])
            break
        self.handle_timer(now)
        return out

    @property
    def output_buffer_playing(self) -> bool:
        """WebRTC: whether the output audio buffer holds audio that has not finished playing."""
        return bool(self._playout)

    def receive(self, text: str, now: float) -> None:
        if self.closed:
            return
        self.client_events += 1
        self.received.append(text)
        self._now = now
        try:
            self._dispatch(text, now)
        finally:
            limit = self.config.close_after_events
            if limit is not None and self.client_events >= limit:
                self.closed = True
                self.abort = True
        self.handle_timer(now)

    # -- session ----------------------------------------------------------------------------

    def _default_session(self, model: str, epoch: float) -> Json:
        c = self.config
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self._new_id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": c.instructions,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": int(epoch + SESSION_MAX_S),
            "include": None,
            "audio": {
                "input": {
                    "format": dict(FORMAT_PCM),
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": dict(FORMAT_PCM), "voice": c.voice, "speed": 1.0},
            },
        }

    @property
    def _input_format(self) -> Json:
        fmt: Json = self.session["audio"]["input"]["format"]
        return fmt

    @property
    def output_format(self) -> Json:
        fmt: Json = self.session["audio"]["output"]["format"]
        return fmt

    @property
    def _turn_detection(self) -> Json | None:
        td: Json | None = self.session["audio"]["input"].get("turn_detection")
        return td

    def _session_update(self, event: Json, client_id: str | None) -> None:
        try:
            merged = self._merged_session(event.get("session"))
        except SessionConfigError as exc:
            self._error(exc.code, exc.message, client_id, param=exc.param)
            return
        wanted = merged["audio"]["input"]["format"]
        if not self.webrtc and wanted != self._input_format:
            self._vad = _Vad(rate=self._input_rate(wanted), elapsed_ms=self._input_ms(),
                             speaking=self._vad.speaking, silence_ms=self._vad.silence_ms,
                             item_id=self._vad.item_id)
        self.session = merged
        self._emit({"type": "session.updated", "session": copy.deepcopy(self.session)})

    def _merged_session(self, patch: object) -> Json:
        """The session with a `session.update` (or calls-request) `session` object applied;
        raises SessionConfigError for what the stand-in rejects."""
        if not isinstance(patch, dict) or patch.get("type") != "realtime":
            raise SessionConfigError("invalid_value", "session.type must be 'realtime'", "session.type")
        forbidden = {"id", "object", "expires_at"} & set(patch)
        if forbidden:
            raise SessionConfigError("unknown_parameter", f"Unknown parameter: 'session.{min(forbidden)}'.",
                                     f"session.{min(forbidden)}")
        if "model" in patch and patch["model"] != self.session["model"]:
            raise SessionConfigError("invalid_value", "The model of a session cannot be changed.", "session.model")
        audio = patch.get("audio") or {}
        if not isinstance(audio, dict):
            raise SessionConfigError("invalid_type", "session.audio must be an object", "session.audio")
        wanted: dict[str, Json] = {}
        for direction in ("input", "output"):
            part = audio.get(direction)
            if isinstance(part, dict) and "format" in part:
                fmt = normalise_format(part["format"])
                if fmt is None:
                    raise SessionConfigError(
                        "invalid_value",
                        f"Invalid audio format {part['format']!r}: supported are "
                        "{'type': 'audio/pcm', 'rate': 24000}, {'type': 'audio/pcmu'}, {'type': 'audio/pcma'}.",
                        f"session.audio.{direction}.format")
                wanted[direction] = self._mangle(fmt) if self.config.mangle_formats else fmt
        td = audio.get("input", {}).get("turn_detection", {}) if isinstance(audio.get("input"), dict) else {}
        if td is not None and td != {} and (not isinstance(td, dict) or td.get("type") not in
                                            ("server_vad", "semantic_vad")):
            raise SessionConfigError("invalid_value", "turn_detection.type must be server_vad or semantic_vad",
                                     "session.audio.input.turn_detection.type")
        merged = deep_merge(self.session, patch)
        for direction, fmt in wanted.items():
            merged["audio"][direction]["format"] = fmt
        return merged

    def _input_rate(self, fmt: Json) -> int:
        """The VAD's sample clock: the track's rate over WebRTC, else the input format's."""
        return self.track_rate if self.webrtc else format_rate(fmt)

    @staticmethod
    def _mangle(fmt: Json) -> Json:
        return dict(_MANGLED[str(fmt["type"])])

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, text: str, now: float) -> None:
        audio = _plain_append_audio(text)
        if audio is not None:
            self._append({"type": "input_audio_buffer.append", "audio": audio}, None)
            return
        try:
            event = json.loads(text)
        except (ValueError, TypeError) as exc:
            self._error("invalid_json", f"The server could not parse the event as JSON: {exc}", None)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._error("invalid_event", "The 'type' field is missing or not a string.", None)
            return
        client_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            **({"output_audio_buffer.clear": self._output_buffer_clear} if self.webrtc else {}),
        }.get(event["type"])
        if handler is None:
            self._error("invalid_value", f"Invalid value: '{event['type']}'. Supported values are "
                        "documented client event types.", client_id, param="type")
            return
        handler(event, client_id)

    # -- input audio and VAD ----------------------------------------------------------------

    def _input_ms(self) -> float:
        return self._vad.elapsed_ms + self._vad.samples_in * 1000.0 / self._vad.rate

    def _append(self, event: Json, client_id: str | None) -> None:
        if self.webrtc:
            self._error("invalid_value", "input_audio_buffer.append is not supported over WebRTC: send audio "
                        "on the media track.", client_id, param="type")
            return
        audio = event.get("audio")
        if not isinstance(audio, str):
            self._error("missing_required_parameter", "Missing required parameter: 'audio'.", client_id,
                        param="audio")
            return
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            self._error("invalid_value", "Invalid 'audio': not valid base64.", client_id, param="audio")
            return
        fmt = self._input_format
        if format_bytes_per_sample(fmt) == 2 and len(data) % 2:
            self._error("invalid_value", "Invalid 'audio': PCM16 audio must have an even byte count.",
                        client_id, param="audio")
            return
        if self.stamps is not None and fmt.get("type") == "audio/pcmu":
            self.stamps.input(data)
        self._ingest(decode_audio(data, fmt))

    def _ingest(self, samples: Int16Array) -> None:
        v = self._vad
        win = v.rate * VAD_WINDOW_MS // 1000
        if samples.size == win and not v.pending.size:  # a bridge's 20 ms append: one window as it is
            self._vad_window(samples)
            return
        buf = np.concatenate([v.pending, samples]) if v.pending.size else samples
        whole = buf.size // win * win
        for start in range(0, whole, win):
            self._vad_window(buf[start:start + win])
        v.pending = buf[whole:].copy()

    def _vad_window(self, window: Int16Array) -> None:
        v = self._vad
        before = v.samples_in  # the window's start, in ms as _input_ms counts, only if speech starts
        v.samples_in += window.size
        self._input_buffer_ms += VAD_WINDOW_MS
        td = self._turn_detection
        if td is None:
            v.captured.append(window)
            del v.captured[:max(0, len(v.captured) - MANUAL_BUFFER_WINDOWS)]
            return
        loud = rms_dbfs(window) >= self.config.threshold_dbfs
        prefix = int(td.get("prefix_padding_ms") or 300)
        if not v.speaking:
            if loud:
                v.speaking = True
                v.silence_ms = 0.0
                v.item_id = self._new_id("item")
                v.captured = [*v.preroll, window]
                v.preroll = []
                start_ms = v.elapsed_ms + before * 1000.0 / v.rate
                self._emit({"type": "input_audio_buffer.speech_started",
                            "audio_start_ms": max(0, round(start_ms) - prefix), "item_id": v.item_id})
                if td.get("interrupt_response", True) is not False:
                    self._interrupt()
            else:
                v.preroll.append(window)
                del v.preroll[:max(0, len(v.preroll) - prefix // VAD_WINDOW_MS)]
            return
        v.captured.append(window)
        v.silence_ms = 0.0 if loud else v.silence_ms + VAD_WINDOW_MS
        silence = int(td.get("silence_duration_ms") or 500)
        if v.silence_ms >= silence:
            item_id = v.item_id or self._new_id("item")
            v.speaking = False
            v.item_id = None
            self._emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": round(self._input_ms()),
                        "item_id": item_id})
            self._commit_buffer(item_id)
            if td.get("create_response", True) is not False and self._response is None:
                self._start_response()

    def _interrupt(self) -> None:
        """Speech onset with interrupt_response: cancel the response in progress; over WebRTC also
        stop and empty the output audio buffer."""
        if self._response is not None:
            self._cancel_response("turn_detected")
        if self.webrtc:
            self._clear_playout()

    def _commit(self, event: Json, client_id: str | None) -> None:
        if self._input_buffer_ms < 100:
            self._error("input_audio_buffer_commit_empty",
                        f"Error committing input audio buffer: buffer too small. Expected at least 100ms "
                        f"of audio, but buffer only has {self._input_buffer_ms:.2f}ms of audio.", client_id)
            return
        item_id = self._vad.item_id or self._new_id("item")
        self._vad.speaking = False
        self._vad.item_id = None
        self._commit_buffer(item_id)

    def _clear(self, event: Json, client_id: str | None) -> None:
        self._input_buffer_ms = 0.0
        self._vad.pending = np.zeros(0, dtype=np.int16)
        self._vad.speaking = False
        self._vad.item_id = None
        self._vad.preroll = []
        self._vad.captured = []
        self._emit({"type": "input_audio_buffer.cleared"})

    def _commit_buffer(self, item_id: str) -> None:
        previous = self.items[-1]["id"] if self.items else None
        self._input_buffer_ms = 0.0
        v = self._vad
        self.last_utterance = np.concatenate(v.captured) if v.captured else np.zeros(0, dtype=np.int16)
        self.last_utterance_rate = v.rate
        v.captured = []
        self._emit({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        item: Json = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                      "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self._add_item(item, previous)

    def _add_item(self, item: Json, previous: str | None) -> None:
        self.items.append(item)
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)})
        self._emit({"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)})

    # -- conversation items -----------------------------------------------------------------

    def _item_create(self, event: Json, client_id: str | None) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in ("message", "function_call",
                                                                  "function_call_output"):
            self._error("invalid_value", "Invalid 'item': expected a message or function call item.", client_id,
                        param="item")
            return
        ids = [i["id"] for i in self.items]
        prev = event.get("previous_item_id")
        if prev is not None and prev != "root" and prev not in ids:
            self._error("item_not_found", f"Previous item with id '{prev}' not found.", client_id,
                        param="previous_item_id")
            return
        if isinstance(item.get("id"), str) and item["id"] in ids:
            self._error("item_already_exists", f"Item with id '{item['id']}' already exists.", client_id,
                        param="item.id")
            return
        stored = copy.deepcopy(item)
        stored.setdefault("id", self._new_id("item"))
        stored["object"] = "realtime.item"
        stored["status"] = "completed"
        previous = (ids[-1] if ids else None) if prev is None else (None if prev == "root" else prev)
        self._add_item(stored, previous)

    def _truncate(self, event: Json, client_id: str | None) -> None:
        item_id = event.get("item_id")
        end_ms = event.get("audio_end_ms")
        index = event.get("content_index")
        if not isinstance(item_id, str) or item_id not in self._assistant_audio_ms:
            self._error("invalid_value", f"Conversation item with id '{item_id}' is not an assistant audio "
                        "message.", client_id, param="item_id")
            return
        if index != 0:
            self._error("invalid_value", "Invalid 'content_index': expected 0.", client_id, param="content_index")
            return
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            self._error("invalid_value", "Invalid 'audio_end_ms': expected an integer >= 0.", client_id,
                        param="audio_end_ms")
            return
        if end_ms > self._assistant_audio_ms[item_id]:
            self._error("invalid_value", f"Audio content of {self._assistant_audio_ms[item_id]:.0f}ms is "
                        f"shorter than {end_ms}ms.", client_id, param="audio_end_ms")
            return
        record = {"item_id": item_id, "content_index": 0, "audio_end_ms": end_ms}
        self.truncations.append(record)
        self._emit({"type": "conversation.item.truncated", **record})

    # -- responses --------------------------------------------------------------------------

    def _response_create(self, event: Json, client_id: str | None) -> None:
        if self._response is not None:
            self._error("conversation_already_has_active_response",
                        f"Conversation already has an active response in progress: {self._response.id}. "
                        "Wait until the response is finished before creating a new one.", client_id)
            return
        self._start_response()

    def _response_cancel(self, event: Json, client_id: str | None) -> None:
        r = self._response
        wanted = event.get("response_id")
        if r is None or (wanted is not None and wanted != r.id):
            self._error("response_cancel_not_active",
                        "Cancellation failed: no active response found.", client_id)
            return
        self._cancel_response("client_cancelled")

    def _response_object(self, r: _Response, status: str, output: list[Json],
                         details: Json | None, usage: Json | None) -> Json:
        return {
            "object": "realtime.response", "id": r.id, "status": status, "status_details": details,
            "output": output, "conversation_id": "conv_default", "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {"output": {"format": dict(r.fmt), "voice": self.session["audio"]["output"]["voice"]}},
            "usage": usage, "metadata": None,
        }

    def _assistant_item(self, r: _Response, status: str, with_content: bool) -> Json:
        content = [{"type": "output_audio", "transcript": self.config.transcript}] if with_content else []
        return {"id": r.item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": status, "content": content}

    def _response_samples(self, rate: int) -> Int16Array:
        """The answer's audio at `rate`: synthetic speech, or in echo mode the last utterance."""
        if not self.config.echo:
            return speech_like(self.config.response_ms, rate)
        src, src_rate = self.last_utterance, self.last_utterance_rate
        if src.size == 0 or src_rate == rate:
            return src
        converted, _ = audioop.ratecv(np.asarray(src, dtype=np.int16).tobytes(), 2, 1, src_rate, rate, None)
        out = np.frombuffer(converted, dtype=np.int16)
        n = src.size * rate // src_rate
        return np.concatenate([out[:n], np.zeros(max(0, n - out.size), dtype=np.int16)])

    def _start_response(self) -> None:
        fmt = dict(self.output_format)
        if self.webrtc:
            samples = self._response_samples(self.track_rate)
            r = _Response(id=self._new_id("resp"), item_id=self._new_id("item"), started=self._now, fmt=fmt,
                          audio=b"", chunks=[], duration_ms=samples.size * 1000.0 / self.track_rate)
        else:
            rate = format_rate(fmt)
            samples = self._response_samples(rate)
            audio = encode_audio(samples, fmt)
            tagged = self.stamps is not None and fmt.get("type") == "audio/pcmu"
            if self.stamps is not None and tagged:
                audio = self.stamps.tag_response(audio)
            r = _Response(id=self._new_id("resp"), item_id=self._new_id("item"), started=self._now, fmt=fmt,
                          audio=audio, chunks=self._plan_chunks(samples.size, rate, format_bytes_per_sample(fmt)),
                          tagged=tagged)
        self._response = r
        self._audio_out = True
        self._emit({"type": "response.created",
                    "response": self._response_object(r, "in_progress", [], None, None)})
        previous = self.items[-1]["id"] if self.items else None
        self._assistant_audio_ms[r.item_id] = 0.0
        item = self._assistant_item(r, "in_progress", False)
        self._emit({"type": "response.output_item.added", "response_id": r.id, "output_index": 0,
                    "item": copy.deepcopy(item)})
        self.items.append(item)
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": copy.deepcopy(item)})
        self._emit({"type": "response.content_part.added", "response_id": r.id, "item_id": r.item_id,
                    "output_index": 0, "content_index": 0, "part": {"type": "audio", "transcript": ""}})
        if self.webrtc:
            self._assistant_audio_ms[r.item_id] = r.duration_ms
            if samples.size:
                self._playout.append(_Playout(response_id=r.id, item_id=r.item_id, samples=samples))
        self._emit({"type": "response.output_audio_transcript.delta", "response_id": r.id,
                    "item_id": r.item_id, "output_index": 0, "content_index": 0,
                    "delta": self.config.transcript})

    def _plan_chunks(self, n_samples: int, rate: int, width: int) -> list[tuple[int, int]]:
        """Byte ranges of seeded random durations in [min_chunk_ms, max_chunk_ms], never a whole
        number of 20 ms frames (except perhaps the final remainder)."""
        frame = rate * VAD_WINDOW_MS // 1000
        lo = max(1, self.config.min_chunk_ms * rate // 1000)
        hi = max(lo, self.config.max_chunk_ms * rate // 1000)
        chunks: list[tuple[int, int]] = []
        pos = 0
        while pos < n_samples:
            size = self._rng.randint(lo, hi)
            if size % frame == 0:
                size += 1
            end = min(n_samples, pos + size)
            chunks.append((pos * width, end * width))
            pos = end
        return chunks

    def _chunk_deadline(self, r: _Response) -> float:
        """When the next delta is due (its first byte / speed after the start); after the last
        one, when generation ends (total duration / speed) and response.done is due."""
        speed = self.config.speed
        if math.isinf(speed):
            return r.started
        if self.webrtc:
            return r.started + r.duration_ms / 1000.0 / speed
        start_bytes = r.chunks[r.next_chunk][0] if r.next_chunk < len(r.chunks) else len(r.audio)
        rate = format_rate(r.fmt) * format_bytes_per_sample(r.fmt)
        return r.started + start_bytes / rate / speed

    def _send_next_chunk(self, r: _Response) -> None:
        if r.next_chunk >= len(r.chunks):
            self._finish_response(r, "completed", None)
            return
        stall = self.config.stall_after_deltas
        if stall is not None and r.deltas_sent >= stall:
            r.stalled = True
            return
        a, b = r.chunks[r.next_chunk]
        r.next_chunk += 1
        r.deltas_sent += 1
        r.bytes_sent = b
        self._assistant_audio_ms[r.item_id] = self._bytes_ms(r, b)
        if self.stamps is not None and r.tagged:
            self.stamps.delta(a, b)
        self._emit({"type": "response.output_audio.delta", "response_id": r.id, "item_id": r.item_id,
                    "output_index": 0, "content_index": 0,
                    "delta": base64.b64encode(r.audio[a:b]).decode("ascii")})

    @staticmethod
    def _bytes_ms(r: _Response, n: int) -> float:
        return n * 1000.0 / (format_rate(r.fmt) * format_bytes_per_sample(r.fmt))

    def _cancel_response(self, reason: str) -> None:
        """End the response as cancelled. Over WebRTC the audio generated so far stays in the output
        audio buffer and plays out (only `output_audio_buffer.clear` or an interruption stops it)."""
        r = self._response
        if r is None:
            return
        if self.webrtc:
            keep = math.ceil(self._generated_ms(r) * self.track_rate / 1000)
            for p in self._playout:
                if p.response_id == r.id:
                    p.samples = p.samples[:max(keep, p.pos)]
        self._finish_response(r, "cancelled", {"type": "cancelled", "reason": reason})

    def _finish_response(self, r: _Response, status: str, details: Json | None) -> None:
        """The closing sequence; per the GA reference the .done events are also sent for an
        interrupted or cancelled response (the item is then `incomplete`)."""
        self._response = None
        common = {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "content_index": 0}
        item_status = "completed" if status == "completed" else "incomplete"
        self._emit({"type": "response.output_audio.done", **common})
        self._emit({"type": "response.output_audio_transcript.done", **common,
                    "transcript": self.config.transcript})
        self._emit({"type": "response.content_part.done", **common,
                    "part": {"type": "audio", "transcript": self.config.transcript}})
        item = self._assistant_item(r, item_status, True)
        for i, stored in enumerate(self.items):
            if stored["id"] == r.item_id:
                self.items[i] = item
        self._emit({"type": "response.output_item.done", "response_id": r.id, "output_index": 0,
                    "item": copy.deepcopy(item)})
        idx = next(i for i, s in enumerate(self.items) if s["id"] == r.item_id)
        previous = self.items[idx - 1]["id"] if idx > 0 else None
        self._emit({"type": "conversation.item.done", "previous_item_id": previous, "item": copy.deepcopy(item)})
        audio_tokens = max(1, round(self._generated_ms(r) / 50))
        text_tokens = max(1, len(self.config.transcript.split()))
        usage = {
            "total_tokens": 10 + audio_tokens + text_tokens, "input_tokens": 10,
            "output_tokens": audio_tokens + text_tokens,
            "input_token_details": {"text_tokens": 10, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": 0,
                                    "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0,
                                                              "image_tokens": 0}},
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }
        response = self._response_object(r, status, [copy.deepcopy(item)], details, usage)
        self.responses.append(response)
        self._emit({"type": "response.done", "response": response})
        if self._stopped_after_done == r.id:
            self._stopped_after_done = None
            self._emit({"type": "output_audio_buffer.stopped", "response_id": r.id})

    def _generated_ms(self, r: _Response) -> float:
        """Audio produced so far: sent as deltas over WebSocket; over WebRTC, generated at `speed`."""
        if not self.webrtc:
            return self._bytes_ms(r, r.bytes_sent)
        if math.isinf(self.config.speed):
            return r.duration_ms
        return min(r.duration_ms, (self._now - r.started) * 1000.0 * self.config.speed)

    # -- WebRTC output audio buffer ---------------------------------------------------------

    def _drained(self, p: _Playout) -> None:
        if self._response is not None and self._response.id == p.response_id:
            self._stopped_after_done = p.response_id
        else:
            self._emit({"type": "output_audio_buffer.stopped", "response_id": p.response_id})

    def _clear_playout(self) -> None:
        """Drop the queued audio; for the response being heard, `output_audio_buffer.cleared` and a
        truncation of its item to the audio played (whole 20 ms frames read by the track)."""
        queue, self._playout = self._playout, []
        self._stopped_after_done = None
        head = queue[0] if queue else None
        if head is None or not head.started:
            return
        self._emit({"type": "output_audio_buffer.cleared", "response_id": head.response_id})
        played_ms = head.pos * 1000 // self.track_rate
        self._assistant_audio_ms[head.item_id] = played_ms
        record = {"item_id": head.item_id, "content_index": 0, "audio_end_ms": played_ms}
        self.server_truncations.append(record)
        self._emit({"type": "conversation.item.truncated", **record})

    def _output_buffer_clear(self, event: Json, client_id: str | None) -> None:
        self._clear_playout()

    # -- output -----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter:06d}"

    def _emit(self, event: Json) -> None:
        event = {"type": event["type"], "event_id": self._new_id("event"),
                 **{k: v for k, v in event.items() if k != "type"}}
        self._out.append(json.dumps(event))

    def _error(self, code: str, message: str, client_id: str | None = None, *,
               err_type: str = "invalid_request_error", param: str | None = None) -> None:
        self._emit({"type": "error", "error": {"type": err_type, "code": code, "message": message,
                                               "param": param, "event_id": client_id}})


# -- asyncio driver -----------------------------------------------------------------------------


class FakeRealtimeServer:
    """Serves `FakeRealtimeSession`s at ws://host:port/v1/realtime?model=...; requires
    `Authorization: Bearer <key>` (any non-empty key unless `config.api_key` is set), else HTTP 401.
    Connection i uses `random.Random(config.seed + i)`. `sessions` keeps every session for tests.
    With `stamps`, each session's stamps are appended to that log when it ends (load runs)."""

    def __init__(self, config: FakeRealtimeConfig | None = None, stamps: StampLog | None = None) -> None:
        self.config = config or FakeRealtimeConfig()
        self.stamps = stamps
        self.sessions: list[FakeRealtimeSession] = []
        self._server: Server | None = None
        self._stamped: dict[SessionStamps, FakeRealtimeSession] = {}  # live sessions with stamps
        self._stamp_writer: asyncio.Task[None] | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await serve(self._handle, host, port, process_request=self._check_request,
                                   max_size=16 * 1024 * 1024)
        if self.stamps is not None:
            self._stamp_writer = asyncio.create_task(self._write_stamps(self.stamps))

    async def _write_stamps(self, log: StampLog) -> None:
        while True:
            await asyncio.sleep(log.interval_s)
            # a session a turn: hundreds at once held the loop for ~16 ms a second, which the
            # callers' view of every session would count as latency
            for tap, s in list(self._stamped.items()):
                log.write([(tap, s.client_events)])
                await asyncio.sleep(0)

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        sockname: Sequence[Any] = next(iter(self._server.sockets)).getsockname()
        return int(sockname[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{REALTIME_PATH}"

    @property
    def open_connections(self) -> int:
        """WebSocket connections open now (a bridge that leaks AI sessions shows here)."""
        return 0 if self._server is None else len(self._server.connections)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._stamp_writer is not None:
            self._stamp_writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stamp_writer
            self._stamp_writer = None

    async def serve_forever(self) -> None:
        assert self._server is not None, "server not started"
        await self._server.serve_forever()

    async def __aenter__(self) -> FakeRealtimeServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != REALTIME_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key or (self.config.api_key is not None and key != self.config.api_key):
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Incorrect API key provided.\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        model = query.get("model", [None])[0]
        tap = self.stamps.session() if self.stamps is not None else None
        session = FakeRealtimeSession(self.config, loop.time(), random.Random(self.config.seed + len(self.sessions)),
                                      model=model, epoch=time.time(), stamps=tap)
        self.sessions.append(session)
        if tap is not None:
            self._stamped[tap] = session
        try:
            await self._serve_session(ws, session)
        finally:
            if self.stamps is not None and tap is not None:
                del self._stamped[tap]
                self.stamps.write([(tap, session.client_events)])

    async def _serve_session(self, ws: ServerConnection, session: FakeRealtimeSession) -> None:
        """Feed the session what the client sends and what its timer says, sending its events as
        they come. The timer is a loop callback re-armed when the session's next deadline moves
        earlier, not a timeout around every read: a load run sends 50 appends a second per call."""
        loop = asyncio.get_running_loop()
        sending = asyncio.Lock()
        due = asyncio.Event()
        timer: asyncio.TimerHandle | None = None
        armed: float | None = None

        def arm() -> None:
            nonlocal timer, armed
            deadline = session.get_timer()
            if deadline is None or (armed is not None and armed <= deadline):
                return  # an earlier wake re-arms after it has run
            if timer is not None:
                timer.cancel()
            armed = deadline
            timer = loop.call_at(deadline, due.set)

        async def flush() -> None:
            async with sending:
                for text in session.events_to_send():
                    if session.stamps is not None:
                        session.stamps.events_out += 1
                    await ws.send(text)
            arm()

        async def timers() -> None:
            nonlocal armed
            while not session.closed:
                await due.wait()
                due.clear()
                at, armed = armed or 0.0, None
                session.handle_timer(max(at, loop.time()))
                await flush()
            reading.cancel()  # the session ended on its own (expiry, a scripted close)

        async def read() -> None:
            while not session.closed:
                message = await ws.recv()
                session.receive(message if isinstance(message, str) else message.decode("utf-8", "replace"),
                                loop.time())
                if session.has_events_to_send:
                    await flush()
                else:  # most appends: no lock and no coroutine for nothing to send
                    arm()

        await flush()
        reading = asyncio.create_task(read())
        ticking = asyncio.create_task(timers())
        try:
            await reading
        except ConnectionClosed:
            return
        except asyncio.CancelledError:
            if not session.closed:
                raise
        finally:
            if timer is not None:
                timer.cancel()
            ticking.cancel()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await ticking
        if session.abort:
            ws.transport.abort()
        else:
            with contextlib.suppress(ConnectionClosed):
                await ws.close(1000, "session ended")
