"""A local stand-in for OpenAI Realtime's WebRTC interface (GA), for tests and load runs on loopback.

Interface modelled (developers.openai.com/api/docs/guides/realtime-webrtc and the
`POST /v1/realtime/calls` reference, mirrored by `openai.resources.realtime.calls.create`):

  * `POST /v1/realtime/calls` with `Authorization: Bearer <key>` and either a `multipart/form-data`
    body (field `sdp`: the offer; optional field `session`: a JSON GA session object, applied
    before the session is created) or a raw `application/sdp` body. Answer: `201 Created`,
    `Content-Type: application/sdp`, `Location: /v1/realtime/calls/{call_id}`. Errors use
    OpenAI's JSON error body: 401 without a usable bearer key, 400 for a malformed body, offer or
    session. `POST /v1/realtime/calls/{call_id}/hangup` ends a call.
  * The GA events flow as JSON text on the data channel labelled `oai-events`, which the client
    creates before its offer; events the session produces before the channel opens are held.
  * Caller audio arrives as Opus RTP on the offer's audio m-line; the stand-in takes the packets
    from aiortc's receiver (`bridge.live.webrtc_leg.PacketTap`), decodes them with libopus (48 kHz
    mono) and runs the same energy VAD as the WebSocket stand-in on them (gaps in the RTP
    timestamps, from loss or a sender that stops sending, are filled with silence so the VAD
    clock stays on the media clock).
  * Response audio goes back on the answer's audio track as Opus the stand-in encodes itself with
    libopus (48 kHz mono, 20 ms, `opus_bitrate`), paced in real time. The default application
    "audio" keeps the waveform (echo mode's cross-correlation through two Opus passes is about 0.93
    at 32 kb/s, against 0.79 with "voip", which browsers use for speech), so an echo measurement is
    dominated by the bridge's own chain rather than by the stand-in's encoder. The offer's
    `maxplaybackrate` (RFC 7587 §6.1: the highest rate the offerer wants to render) caps the
    encoder's audio bandwidth, as a WebRTC sender does, so `maxplaybackrate=16000` gets wideband
    Opus; `useinbandfec=1` turns on in-band FEC (libopus spends bits on it only for a nonzero
    expected loss, which it is not told here). Offers without opus/48000/2 are refused (400).
  * Between responses the track sends no packets by default (`idle_audio="none"`): the RTP
    timestamp then jumps over the pause, as with DTX. Whether OpenAI sends silence or nothing
    there is not documented; `idle_audio="silence"` sends encoded silence instead.

The event logic is the shared sans-I/O `FakeRealtimeSession` in WebRTC mode (see its docstring:
output_audio_buffer.started/stopped/cleared, no output_audio.delta, no input_audio_buffer.append);
this module only carries media and events. Per-call observations for tests are on
`FakeWebRtcCall` (`server.calls`).

ICE: `start()` restricts host candidates to 127.0.0.1 process-wide (`bridge.live.webrtc_net`), so the
stand-in only talks to peers on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import av
import numpy as np
import opuslib
import opuslib.api.ctl
import opuslib.api.encoder
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from bridge.live.webrtc_leg import PacketTap
from bridge.live.webrtc_net import restrict_ice_to
from bridge.stand_ins.realtime_ws import (
    TRANSPORT_WEBRTC,
    FakeRealtimeConfig,
    FakeRealtimeSession,
    Int16Array,
    Json,
    SessionConfigError,
)

log = logging.getLogger(__name__)

CALLS_PATH = "/v1/realtime/calls"
EVENTS_LABEL = "oai-events"
TRACK_RATE = 48000
FRAME_S = 0.020
FRAME_SAMPLES = TRACK_RATE // 50
TIME_BASE = fractions.Fraction(1, TRACK_RATE)
MAX_GAP_FILL_S = 10.0
MAX_SHARED_PACKETS = 50 * 600  # encode_once keeps up to 10 minutes of distinct answer audio
MAX_OPUS_SAMPLES = TRACK_RATE * 120 // 1000  # the longest Opus packet, 120 ms (RFC 6716 §2.1.4)
IdleAudio = Literal["none", "silence"]
OpusApplication = Literal["audio", "voip"]
_APPLICATIONS = {"audio": opuslib.APPLICATION_AUDIO, "voip": opuslib.APPLICATION_VOIP}

_OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+)\s+opus/48000(?:/2)?\s*$", re.IGNORECASE | re.MULTILINE)


def offer_opus_fmtp(sdp: str) -> dict[str, str] | None:
    """The `a=fmtp` parameters of the offer's Opus payload type (`{}` if it has none), or None
    when the SDP offers no opus/48000 codec. Keys are lower-cased; values kept as written."""
    match = _OPUS_RTPMAP.search(sdp)
    if match is None:
        return None
    fmtp = re.search(rf"^a=fmtp:{match.group(1)}\s+(.*?)\s*$", sdp, re.MULTILINE)
    params: dict[str, str] = {}
    if fmtp is not None:
        for part in fmtp.group(1).split(";"):
            key, sep, value = part.strip().partition("=")
            if key:
                params[key.lower()] = value.strip() if sep else ""
    return params


def opus_max_bandwidth(maxplaybackrate: int | None) -> int:
    """libopus max bandwidth for a receiver's maxplaybackrate (RFC 7587 §6.1; RFC 6716 §2 table 1:
    NB 8, MB 12, WB 16, SWB 24, FB 48 kHz sampling)."""
    if maxplaybackrate is None:
        return int(opuslib.BANDWIDTH_FULLBAND)
    for rate, bandwidth in ((8000, opuslib.BANDWIDTH_NARROWBAND), (12000, opuslib.BANDWIDTH_MEDIUMBAND),
                            (16000, opuslib.BANDWIDTH_WIDEBAND), (24000, opuslib.BANDWIDTH_SUPERWIDEBAND)):
        if maxplaybackrate <= rate:
            return int(bandwidth)
    return int(opuslib.BANDWIDTH_FULLBAND)


def _int_param(params: dict[str, str], key: str) -> int | None:
    try:
        return int(params[key])
    except (KeyError, ValueError):
        return None


def openai_error(status: int, message: str, *, err_type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> web.Response:
    """An HTTP error with OpenAI's JSON error body."""
    body = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    return web.json_response(body, status=status)


@dataclass
class FakeWebRtcCall:
    """One call's peer connection, session and observations (read these in tests).

    `received_events`: every client event parsed from the data channel (non-JSON messages are
    kept as `{"_unparsed": text}`); `sent_events`: every server event as sent; `frames_received`
    and `audio_received_s`: decoded RTP audio frames from the caller and their total duration;
    `gap_filled_s`: silence inserted for RTP timestamp gaps; `frames_sent` / `audio_sent_s`: Opus
    packets sent on the track (idle silence included when `idle_audio="silence"`); `offer_fmtp`:
    the offer's Opus fmtp parameters (e.g. `{"maxplaybackrate": "16000", ...}`);
    `input_audio`: the caller audio as decoded, mono 48 kHz, when the server keeps it."""

    call_id: str
    session: FakeRealtimeSession
    pc: RTCPeerConnection
    offer_sdp: str
    offer_fmtp: dict[str, str]
    answer_sdp: str = ""
    received_events: list[Json] = field(default_factory=list)
    sent_events: list[Json] = field(default_factory=list)
    frames_received: int = 0
    audio_received_s: float = 0.0
    gap_filled_s: float = 0.0
    frames_sent: int = 0
    audio_sent_s: float = 0.0
    input_chunks: list[Int16Array] = field(default_factory=list)
    keep_input_audio: bool = False
    channel_open: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _channel: RTCDataChannel | None = field(default=None, init=False, repr=False)
    _outbox: list[str] = field(default_factory=list, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False, repr=False)
    bad_packets: int = 0
    _decoder: opuslib.Decoder = field(default_factory=lambda: opuslib.Decoder(TRACK_RATE, 1), init=False, repr=False)
    _first_ts: int | None = field(default=None, init=False, repr=False)
    _next_pts: int | None = field(default=None, init=False, repr=False)
    _armed: float | None = field(default=None, init=False, repr=False)  # the deadline run_timers waits for
    _closing: bool = field(default=False, init=False, repr=False)

    @property
    def input_audio(self) -> Int16Array:
        return np.concatenate(self.input_chunks) if self.input_chunks else np.zeros(0, dtype=np.int16)

    # -- media and events (driven by the server) ---------------------------------------------

    def attach_channel(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        @channel.on("message")
        def on_message(message: str | bytes) -> None:
            self.on_message(message)

        self.channel_open.set()
        self.flush()

    def on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        self.received_events.append(parsed if isinstance(parsed, dict) else {"_unparsed": text})
        self.session.receive(text, asyncio.get_running_loop().time())
        self.flush()

    def on_packet(self, packet: RtpPacket) -> None:
        """One RTP packet of caller audio, decoded at 48 kHz mono; the RTP timestamp (48 kHz
        clock, RFC 7587) places it, and a jump over missing media is fed as silence."""
        try:
            mono = np.frombuffer(self._decoder.decode(packet.payload, MAX_OPUS_SAMPLES), dtype="<i2")
        except opuslib.OpusError:
            self.bad_packets += 1
            return
        self.frames_received += 1
        self.audio_received_s += mono.size / TRACK_RATE
        now = asyncio.get_running_loop().time()
        if self._first_ts is None:
            self._first_ts = packet.timestamp
        pts = (packet.timestamp - self._first_ts) % 2**32
        if self._next_pts is not None and pts > self._next_pts:
            gap = min(pts - self._next_pts, int(MAX_GAP_FILL_S * TRACK_RATE))
            self.gap_filled_s += gap / TRACK_RATE
            self.session.feed_audio(np.zeros(gap, dtype=np.int16), now)
        self._next_pts = max(pts + mono.size, self._next_pts or 0)
        if self.keep_input_audio:
            self.input_chunks.append(mono)
        self.session.feed_audio(mono, now)
        self.flush()

    def pull_frame(self) -> Int16Array | None:
        samples = self.session.next_output_frame(asyncio.get_running_loop().time())
        self.flush()
        return samples

    def flush(self) -> None:
        self._outbox.extend(self.session.events_to_send())
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            for text in self._outbox:
                channel.send(text)
                self.sent_events.append(json.loads(text))
            self._outbox = []
        if self.session.get_timer() != self._armed:
            self._wake.set()
        if self.session.closed and not self._closing:
            self._closing = True
            self._tasks.append(asyncio.ensure_future(self.close()))

    async def run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.ended.is_set():
            self._wake.clear()
            deadline = self._armed = self.session.get_timer()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self.session.handle_timer(max(deadline or 0.0, loop.time()))
                self.flush()

    async def close(self) -> None:
        """Close the peer connection and stop this call's tasks (idempotent)."""
        if self.ended.is_set():
            return
        self.ended.set()
        self._wake.set()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self.pc.close()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


class OpusResponseTrack(MediaStreamTrack):
    """The stand-in's outbound audio: every 20 ms of its own clock it takes the session's next
    output frame, encodes it with libopus and returns it as a pre-encoded `av.Packet` (aiortc
    sends those as they are). With nothing to play it sends nothing (or silence), but the
    timestamp keeps counting, so the receiver sees the pause on the media clock."""

    kind = "audio"

    def __init__(self, call: FakeWebRtcCall, *, bitrate: int, max_bandwidth: int, fec: bool,
                 idle_audio: IdleAudio, application: OpusApplication = "audio",
                 shared_packets: dict[tuple[int, bool, bytes], bytes] | None = None) -> None:
        super().__init__()
        self._call = call
        self._idle_audio = idle_audio
        self._shared = shared_packets
        self._max_bandwidth = max_bandwidth
        self._fec = fec
        self._encoder = opuslib.Encoder(TRACK_RATE, 1, _APPLICATIONS[application])
        self._encoder.bitrate = bitrate
        self._encoder.max_bandwidth = max_bandwidth
        # opuslib's inband_fec setter drops its argument, so the CTL is called directly.
        opuslib.api.encoder.encoder_ctl(self._encoder.encoder_state, opuslib.api.ctl.set_inband_fec, int(fec))
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._t0: float | None = None
        self._index = 0

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            delay = self._t0 + self._index * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            index = self._index
            self._index += 1
            samples = self._call.pull_frame()
            if samples is None:
                if self._idle_audio == "none":
                    continue
                samples = self._silence
            pcm = np.asarray(samples, dtype="<i2").tobytes()
            key = (self._max_bandwidth, self._fec, pcm)
            payload = None if self._shared is None else self._shared.get(key)
            if payload is None:
                payload = bytes(self._encoder.encode(pcm, FRAME_SAMPLES))
                if self._shared is not None and len(self._shared) < MAX_SHARED_PACKETS:
                    self._shared[key] = payload
            packet = av.Packet(payload)
            packet.pts = index * FRAME_SAMPLES
            packet.time_base = TIME_BASE
            self._call.frames_sent += 1
            self._call.audio_sent_s += FRAME_S
            return packet


class FakeRealtimeWebRtcServer:
    """Serves `POST /v1/realtime/calls` (see the module docstring) on http://host:port.

    `config` is the shared `FakeRealtimeConfig` (VAD threshold, response_ms, speed, echo, api_key,
    seed...). `idle_audio`: what the track sends between responses ("none" or "silence");
    `opus_bitrate` / `opus_application`: the stand-in's Opus encoder; `keep_input_audio`: keep each call's
    decoded caller audio in `FakeWebRtcCall.input_audio`; `encode_once`: encode each distinct
    20 ms of answer audio once and send that packet on every call (load runs, where encoding for
    every call would make the stand-in the bottleneck; the packets are still real Opus, encoded
    in another call's stream). Call i uses `random.Random(seed + i)`.
    `calls` lists every call in arrival order (also the refused-before-answer ones are absent)."""

    def __init__(self, config: FakeRealtimeConfig | None = None, *, idle_audio: IdleAudio = "none",
                 opus_bitrate: int = 32000, opus_application: OpusApplication = "audio",
                 keep_input_audio: bool = False, encode_once: bool = False) -> None:
        if idle_audio not in ("none", "silence"):
            raise ValueError(f"idle_audio must be 'none' or 'silence', not {idle_audio!r}")
        if opus_application not in _APPLICATIONS:
            raise ValueError(f"opus_application must be 'audio' or 'voip', not {opus_application!r}")
        if not 6000 <= opus_bitrate <= 510000:
            raise ValueError(f"opus_bitrate {opus_bitrate} outside 6000..510000 (RFC 6716 §2.1.1)")
        self.config = config or FakeRealtimeConfig()
        self.idle_audio: IdleAudio = idle_audio
        self.opus_bitrate = opus_bitrate
        self.opus_application: OpusApplication = opus_application
        self.keep_input_audio = keep_input_audio
        self.shared_packets: dict[tuple[int, bool, bytes], bytes] | None = {} if encode_once else None
        self.calls: list[FakeWebRtcCall] = []
        self._runner: web.AppRunner | None = None
        self._counter = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        restrict_ice_to(["127.0.0.1"])
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(CALLS_PATH, self._create_call)
        app.router.add_post(CALLS_PATH + "/{call_id}/hangup", self._hangup)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    @property
    def port(self) -> int:
        assert self._runner is not None, "server not started"
        return int(self._runner.addresses[0][1])

    @property
    def base_url(self) -> str:
        """What a client uses as its API base: POST {base_url}/v1/realtime/calls."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}{CALLS_PATH}"

    def call(self, call_id: str) -> FakeWebRtcCall:
        return next(c for c in self.calls if c.call_id == call_id)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.calls), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeRealtimeWebRtcServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- HTTP -----------------------------------------------------------------------------------

    def _check_auth(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        if self.config.api_key is not None and key != self.config.api_key:
            return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        return None

    async def _read_body(self, request: web.Request) -> tuple[str | None, str | None]:
        """(sdp, session JSON text) from a multipart or application/sdp body; raises ValueError."""
        if request.content_type == "multipart/form-data":
            fields: dict[str, str] = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name in ("sdp", "session"):
                    fields[part.name] = await part.text()
            return fields.get("sdp"), fields.get("session")
        if request.content_type == "application/sdp":
            return await request.text(), None
        raise ValueError(f"Unsupported content type '{request.content_type}': send multipart/form-data with "
                         "'sdp' and 'session' fields, or an application/sdp body.")

    async def _create_call(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        try:
            sdp, session_text = await self._read_body(request)
        except (ValueError, AssertionError, HttpProcessingError) as exc:
            return openai_error(400, f"Could not parse the request body: {exc}", code="invalid_request_body")
        if not sdp or not sdp.lstrip().startswith("v=0"):
            return openai_error(400, "Missing or malformed 'sdp': expected an SDP offer starting with 'v=0'.",
                                param="sdp", code="invalid_offer")
        initial: Json | None = None
        if session_text is not None:
            try:
                initial = json.loads(session_text)
            except ValueError as exc:
                return openai_error(400, f"Invalid 'session': not valid JSON ({exc}).", param="session",
                                    code="invalid_json")
            if not isinstance(initial, dict):
                return openai_error(400, "Invalid 'session': expected an object.", param="session",
                                    code="invalid_type")
        fmtp = offer_opus_fmtp(sdp)
        if fmtp is None:
            return openai_error(400, "The SDP offer has no opus/48000/2 audio codec.", param="sdp",
                                code="unsupported_codec")
        loop = asyncio.get_running_loop()
        model = initial.get("model") if initial is not None and isinstance(initial.get("model"), str) else None
        try:
            session = FakeRealtimeSession(self.config, loop.time(), random.Random(self.config.seed + self._counter),
                                          model=model, epoch=time.time(), transport=TRANSPORT_WEBRTC,
                                          track_rate=TRACK_RATE, initial_session=initial)
        except SessionConfigError as exc:
            return openai_error(400, exc.message, param=exc.param, code=exc.code)
        self._counter += 1
        call = FakeWebRtcCall(call_id=f"rtc_{self._counter:06d}", session=session, pc=RTCPeerConnection(),
                              offer_sdp=sdp, offer_fmtp=fmtp, keep_input_audio=self.keep_input_audio)
        try:
            answer = await self._answer(call)
        except Exception as exc:
            await call.close()
            return openai_error(400, f"Could not apply the SDP offer: {exc}", param="sdp", code="invalid_offer")
        call.answer_sdp = answer
        self.calls.append(call)
        return web.Response(status=201, text=answer, content_type="application/sdp",
                            headers={"Location": f"{CALLS_PATH}/{call.call_id}"})

    async def _answer(self, call: FakeWebRtcCall) -> str:
        pc = call.pc

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == EVENTS_LABEL:
                call.attach_channel(channel)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await call.close()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=call.offer_sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                PacketTap.install(transceiver.receiver, call.on_packet)
        rate = _int_param(call.offer_fmtp, "maxplaybackrate")
        pc.addTrack(OpusResponseTrack(call, bitrate=self.opus_bitrate, max_bandwidth=opus_max_bandwidth(rate),
                                      fec=call.offer_fmtp.get("useinbandfec") == "1", idle_audio=self.idle_audio,
                                      application=self.opus_application, shared_packets=self.shared_packets))
        await pc.setLocalDescription(await pc.createAnswer())
        call._tasks.append(asyncio.ensure_future(call.run_timers()))
        return str(pc.localDescription.sdp)

    async def _hangup(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        call_id = request.match_info["call_id"]
        call = next((c for c in self.calls if c.call_id == call_id), None)
        if call is None:
            return openai_error(404, f"Call '{call_id}' not found.", code="call_not_found")
        await call.close()
        return web.Response(status=200)
