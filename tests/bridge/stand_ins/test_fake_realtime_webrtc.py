"""The Realtime stand-in's WebRTC side: sans-I/O tests of the session in WebRTC mode (time passed
in), echo mode on both transports, and loopback tests with a real aiortc caller that POSTs its
offer over HTTP, talks Opus on the media track and GA events on the `oai-events` data channel.
Every server event is validated strictly against the openai package's models (the same checks as
test_fake_realtime.py) and every client event sent against RealtimeClientEvent."""

from __future__ import annotations

import asyncio
import base64
import collections
import fractions
import json
import math
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import av
import numpy as np
import numpy.typing as npt
import opuslib
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from openai import AsyncOpenAI

from bridge.live.webrtc_net import restrict_ice_to
from bridge.stand_ins.realtime_webrtc import (
    CALLS_PATH,
    EVENTS_LABEL,
    FakeRealtimeWebRtcServer,
    offer_opus_fmtp,
    opus_max_bandwidth,
)
from bridge.stand_ins.realtime_ws import (
    FORMAT_PCMU,
    FakeRealtimeConfig,
    FakeRealtimeSession,
    SessionConfigError,
    encode_audio,
    rms_dbfs,
    speech_like,
)
from tests.bridge.stand_ins.test_fake_realtime import PCMU_UPDATE, check_server, client, deltas, types

Json = dict[str, Any]
Int16Array = npt.NDArray[np.int16]
RATE = 48000
FRAME = RATE // 50
FMTP_16K = "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1"
AUTH = {"Authorization": "Bearer sk-test"}


def downmix(frame: av.AudioFrame) -> Int16Array:
    """How a test client hears the stand-in: a decoded s16 frame (packed or planar, any channel
    count) as mono int16, the channel mean rounded down; for a mono stream decoded as stereo
    (identical channels) exactly either channel."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    stacked = np.asarray(data, dtype=np.int32)
    if not frame.format.is_planar:
        stacked = stacked.reshape(-1, channels).T
    return np.asarray(stacked.sum(axis=0) // channels, dtype=np.int16)


def intoned(ms: int, rate: int, peak: float = 0.4) -> Int16Array:
    """Voiced speech with intonation: a gliding 140-280 Hz fundamental with 1/k harmonics and a
    3 Hz syllable envelope that never reaches silence. Unlike `speech_like` it is not periodic, so
    cross-correlation has one clear peak."""
    t = np.arange(ms * rate // 1000, dtype=np.float64) / rate
    f0 = 180.0 + 60.0 * np.sin(2 * np.pi * 1.3 * t) + 40.0 * t
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum((np.sin(k * phase + 0.3 * k) / k for k in range(1, 16)), np.zeros_like(t))
    wave *= 0.55 - 0.45 * np.cos(2 * np.pi * 3.0 * t)
    return np.asarray(np.round(wave / np.max(np.abs(wave)) * peak * 32767), dtype=np.int16)


def upsample(x: Int16Array, factor: int) -> npt.NDArray[np.float64]:
    """Band-limited (FFT zero-padding) interpolation by an integer factor."""
    spectrum = np.fft.rfft(x.astype(np.float64))
    return np.fft.irfft(spectrum, x.size * factor) * factor


def xcorr_peak(reference: npt.NDArray[np.float64], signal: npt.NDArray[np.float64]) -> tuple[float, int]:
    """Max over lags of the normalised cross-correlation of `reference` against windows of
    `signal` of the same length, and the lag where it peaks."""
    n = reference.size
    if signal.size < n:
        signal = np.concatenate([signal, np.zeros(n - signal.size)])
    size = 1 << math.ceil(math.log2(signal.size + n))
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(reference, size)), size)[:signal.size - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(signal * signal)])
    window = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9))
    score = corr / (np.linalg.norm(reference) * window)
    lag = int(np.argmax(score))
    return float(score[lag]), lag


# -- sans-I/O: the session in WebRTC mode ------------------------------------------------------


class RtcDriver:
    """Feeds a WebRTC-mode session 20 ms at a time like the driver does, with explicit time: caller
    audio in, one output frame pulled per tick, timers run at their deadlines."""

    def __init__(self, config: FakeRealtimeConfig | None = None, initial: Json | None = None) -> None:
        self.now = 100.0
        self.s = FakeRealtimeSession(config or FakeRealtimeConfig(), self.now, random.Random(1),
                                     transport="webrtc", track_rate=RATE, initial_session=initial)
        self.log: list[tuple[float, Json]] = []
        self.played: list[tuple[float, Int16Array]] = []

    def drain(self) -> list[Json]:
        out = [check_server(t) for t in self.s.events_to_send()]
        self.log += [(self.now, e) for e in out]
        return out

    def send(self, obj: Json) -> list[Json]:
        self.s.receive(client(obj), self.now)
        return self.drain()

    def tick(self, audio: Int16Array | None = None) -> list[Json]:
        self.s.feed_audio(audio if audio is not None else np.zeros(FRAME, dtype=np.int16), self.now)
        out = self.drain()
        frame = self.s.next_output_frame(self.now)
        if frame is not None:
            assert frame.size == FRAME
            self.played.append((self.now, frame))
        out += self.drain()
        target = self.now + 0.020
        while (t := self.s.get_timer()) is not None and t <= target:
            self.now = max(self.now, t)
            self.s.handle_timer(self.now)
            out += self.drain()
        self.now = target
        return out

    def stream(self, audio: Int16Array) -> list[Json]:
        out: list[Json] = []
        for i in range(0, audio.size, FRAME):
            out += self.tick(audio[i:i + FRAME])
        return out

    def idle(self, seconds: float) -> list[Json]:
        out: list[Json] = []
        for _ in range(round(seconds / 0.020)):
            out += self.tick()
        return out

    def at(self, event_type: str) -> float:
        return next(t for t, e in self.log if e["type"] == event_type)


SILENCE_48K = np.zeros(RATE // 2, dtype=np.int16)


def test_webrtc_turn_plays_on_the_track_and_stops_after_response_done() -> None:
    d = RtcDriver(FakeRealtimeConfig(speed=4.0, response_ms=1500))
    [created] = d.drain()
    assert created["type"] == "session.created"
    events = d.stream(np.concatenate([SILENCE_48K, speech_like(1000, RATE), SILENCE_48K])) + d.idle(2.0)
    names = types(events)
    assert "response.output_audio.delta" not in names
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
             "response.created", "response.content_part.added", "output_audio_buffer.started", "response.done",
             "output_audio_buffer.stopped"]
    assert [names.index(n) for n in order] == sorted(names.index(n) for n in order)
    rid = events[names.index("response.created")]["response"]["id"]
    assert all(e["response_id"] == rid for e in events if e["type"].startswith("output_audio_buffer."))
    assert events[names.index("response.done")]["response"]["status"] == "completed"
    # generated 4x faster than real time; played in real time, 75 frames of 20 ms
    assert d.at("response.done") - d.at("response.created") == pytest.approx(1.5 / 4)
    assert len(d.played) == 75
    assert d.at("output_audio_buffer.stopped") - d.at("output_audio_buffer.started") == pytest.approx(1.5)
    audio = np.concatenate([f for _, f in d.played])
    assert np.array_equal(audio, speech_like(1500, RATE))


def test_webrtc_stopped_waits_for_response_done_when_generation_is_slower() -> None:
    d = RtcDriver(FakeRealtimeConfig(speed=0.5, response_ms=400))
    d.drain()
    d.send({"type": "response.create"})
    events = d.idle(1.2)
    names = types(events)
    assert names.index("response.done") + 1 == names.index("output_audio_buffer.stopped")
    assert d.at("output_audio_buffer.stopped") == pytest.approx(d.at("response.created") + 0.8)


def test_webrtc_barge_in_cancels_clears_and_truncates_to_what_was_played() -> None:
    d = RtcDriver(FakeRealtimeConfig(speed=1.0, response_ms=3000))
    d.drain()
    first = d.stream(np.concatenate([speech_like(600, RATE), SILENCE_48K, SILENCE_48K]))
    assert "output_audio_buffer.started" in types(first)
    played_before = len(d.played)
    barge = d.stream(speech_like(300, RATE))
    names = types(barge)
    assert names[0] == "input_audio_buffer.speech_started"
    done = barge[names.index("response.done")]["response"]
    assert (done["status"], done["status_details"]) == ("cancelled", {"type": "cancelled", "reason": "turn_detected"})
    cleared = barge[names.index("output_audio_buffer.cleared")]
    truncated = barge[names.index("conversation.item.truncated")]
    assert cleared["response_id"] == done["id"]
    assert names.index("response.done") < names.index("output_audio_buffer.cleared") < names.index(
        "conversation.item.truncated")
    assert "output_audio_buffer.stopped" not in names
    heard = len(d.played)
    assert heard == played_before > 20  # onset in the first loud window: no frame after it
    assert truncated["item_id"] == done["output"][0]["id"]
    assert truncated["audio_end_ms"] == heard * 20
    assert d.s.server_truncations == [{"item_id": truncated["item_id"], "content_index": 0,
                                       "audio_end_ms": heard * 20}]
    assert d.s.truncations == []
    assert not d.s.output_buffer_playing
    [err] = d.send({"type": "conversation.item.truncate", "item_id": truncated["item_id"], "content_index": 0,
                    "audio_end_ms": heard * 20 + 20})
    assert err["type"] == "error"
    # the client's own truncate to what its caller heard (less than was played) is still accepted
    [ok] = d.send({"type": "conversation.item.truncate", "item_id": truncated["item_id"], "content_index": 0,
                   "audio_end_ms": 100})
    assert ok["type"] == "conversation.item.truncated"
    assert d.s.truncations == [{"item_id": truncated["item_id"], "content_index": 0, "audio_end_ms": 100}]
    assert d.send({"type": "output_audio_buffer.clear"}) == []


def test_webrtc_response_cancel_lets_generated_audio_play_out() -> None:
    d = RtcDriver(FakeRealtimeConfig(speed=1.0, response_ms=2000))
    d.drain()
    d.send({"type": "response.create"})
    d.idle(0.5)
    cancelled = d.send({"type": "response.cancel"})
    assert cancelled[-1]["response"]["status"] == "cancelled"
    rest = d.idle(0.5)
    assert types(rest) == ["output_audio_buffer.stopped"]
    assert 24 <= len(d.played) <= 27


def test_webrtc_output_audio_buffer_clear() -> None:
    d = RtcDriver(FakeRealtimeConfig(speed=8.0, response_ms=1000))
    d.drain()
    assert d.send({"type": "output_audio_buffer.clear", "event_id": "evt_idle"}) == []
    d.send({"type": "response.create"})
    d.idle(0.3)
    cleared = d.send({"type": "output_audio_buffer.clear"})
    assert types(cleared) == ["output_audio_buffer.cleared", "conversation.item.truncated"]
    assert cleared[1]["audio_end_ms"] == len(d.played) * 20
    assert d.idle(0.2) == [] and len(d.played) == 15


def test_webrtc_refuses_append_and_websocket_refuses_buffer_clear() -> None:
    d = RtcDriver()
    d.drain()
    [err] = d.send({"type": "input_audio_buffer.append", "event_id": "evt_a",
                    "audio": base64.b64encode(b"\0\0").decode()})
    assert (err["type"], err["error"]["event_id"]) == ("error", "evt_a")
    ws = FakeRealtimeSession(FakeRealtimeConfig(), 0.0, random.Random(0))
    ws.events_to_send()
    ws.receive(client({"type": "output_audio_buffer.clear", "event_id": "evt_c"}), 0.0)
    [werr] = [check_server(t) for t in ws.events_to_send()]
    assert (werr["type"], werr["error"]["event_id"]) == ("error", "evt_c")
    with pytest.raises(RuntimeError):
        ws.feed_audio(np.zeros(FRAME, dtype=np.int16), 0.0)


def test_webrtc_initial_session_is_applied_before_session_created() -> None:
    initial = {"type": "realtime", "model": "gpt-realtime-mini", "instructions": "Be terse.",
               "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}},
                         "output": {"voice": "marin"}}}
    d = RtcDriver(initial=initial)
    [created] = d.drain()
    s = created["session"]
    assert (s["model"], s["instructions"], s["audio"]["output"]["voice"]) == ("gpt-realtime-mini", "Be terse.", "marin")
    assert s["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200
    assert s["audio"]["input"]["turn_detection"]["prefix_padding_ms"] == 300
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    with pytest.raises(SessionConfigError) as info:
        FakeRealtimeSession(FakeRealtimeConfig(), 0.0, random.Random(0), transport="webrtc",
                            initial_session={"type": "realtime", "audio": {"input": {"format": {"type": "opus"}}}})
    assert info.value.param == "session.audio.input.format"


def test_webrtc_echo_plays_back_the_committed_utterance_exactly() -> None:
    d = RtcDriver(FakeRealtimeConfig(echo=True, speed=4.0))
    d.drain()
    utterance = intoned(800, RATE)
    caller = np.concatenate([SILENCE_48K, utterance, SILENCE_48K, SILENCE_48K, SILENCE_48K])
    events = d.stream(caller) + d.idle(1.0)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    a, b = started["audio_start_ms"] * RATE // 1000, stopped["audio_end_ms"] * RATE // 1000
    assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (200, 1800)
    assert np.array_equal(d.s.last_utterance, caller[a:b])
    played = np.concatenate([f for _, f in d.played])
    assert np.array_equal(played, caller[a:b])
    assert "output_audio_buffer.stopped" in types(events)


def test_websocket_echo_returns_the_utterance_in_the_output_format() -> None:
    from tests.bridge.stand_ins.test_fake_realtime import Driver

    d = Driver(FakeRealtimeConfig(echo=True, speed=math.inf))
    d.drain()
    d.send(client(PCMU_UPDATE))
    speech = encode_audio(intoned(600, 8000), FORMAT_PCMU)
    silence = b"\xff" * 160
    stream = silence * 25 + speech + silence * 30
    frames = [stream[i:i + 160] for i in range(0, len(stream), 160)]
    events = d.stream(frames) + d.run_timers()
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    a, b = started["audio_start_ms"] * 8, stopped["audio_end_ms"] * 8
    assert b"".join(deltas(events)) == stream[a:b]
    assert events[-1]["type"] == "response.done"
    # another format: resampled to 24 kHz PCM, same duration
    d.send(client({"type": "session.update", "session": {"type": "realtime", "audio": {
        "output": {"format": {"type": "audio/pcm", "rate": 24000}}}}}))
    again = d.send(client({"type": "response.create"})) + d.run_timers()
    assert len(b"".join(deltas(again))) == (b - a) * 3 * 2


def test_sdp_helpers() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n" \
          f"a=fmtp:111 {FMTP_16K}\r\na=rtpmap:0 PCMU/8000\r\n"
    assert offer_opus_fmtp(sdp) == {"maxplaybackrate": "16000", "sprop-maxcapturerate": "16000", "useinbandfec": "1"}
    assert offer_opus_fmtp(sdp.replace(f"a=fmtp:111 {FMTP_16K}\r\n", "")) == {}
    assert offer_opus_fmtp("v=0\r\na=rtpmap:0 PCMU/8000\r\n") is None
    assert opus_max_bandwidth(16000) == opuslib.BANDWIDTH_WIDEBAND
    assert opus_max_bandwidth(None) == opus_max_bandwidth(48000) == opuslib.BANDWIDTH_FULLBAND
    assert opus_max_bandwidth(8000) == opuslib.BANDWIDTH_NARROWBAND
    stereo = av.AudioFrame.from_ndarray(np.array([[1, 1, -3, -3, 5, 7]], dtype=np.int16), format="s16",
                                        layout="stereo")
    assert downmix(stereo).tolist() == [1, -3, 6]


# -- loopback: a real aiortc caller ------------------------------------------------------------


class CallerTrack(MediaStreamTrack):
    """The test caller's microphone: 16 kHz mono Opus (libopus, VOIP, 32 kb/s), 20 ms packets,
    pre-encoded and paced in real time; plays what `play` queued, silence otherwise, and records
    every 16 kHz frame it sent in `sent`."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._encoder = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = 32000
        self._queue: collections.deque[Int16Array] = collections.deque()
        self._t0: float | None = None
        self._index = 0
        self.sent: list[Int16Array] = []

    def play(self, samples: Int16Array) -> float:
        """Queue 16 kHz audio; returns its duration in seconds."""
        padded = np.concatenate([samples, np.zeros(-samples.size % 320, dtype=np.int16)])
        self._queue.extend(padded.reshape(-1, 320))
        return padded.size / 16000

    async def recv(self) -> av.Packet[Any]:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(max(0.0, self._t0 + self._index * 0.020 - loop.time()))
        frame = self._queue.popleft() if self._queue else np.zeros(320, dtype=np.int16)
        self.sent.append(frame)
        packet = av.Packet(bytes(self._encoder.encode(frame.astype("<i2").tobytes(), 320)))
        packet.pts = self._index * 960
        packet.time_base = fractions.Fraction(1, 48000)
        self._index += 1
        return packet


class Caller:
    """A WebRTC client of the stand-in, as the bridge will be: creates `oai-events` and a send/recv
    audio transceiver, POSTs the (fmtp-munged) offer, applies the answer."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.channel = self.pc.createDataChannel(EVENTS_LABEL)
        self.mic = CallerTrack()
        self.pc.addTrack(self.mic)
        self.inbox: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self.events: list[tuple[float, Json]] = []
        self.audio: list[tuple[float, Int16Array]] = []  # (arrival time, mono 48 kHz frame)
        self.location = ""
        self._tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()

        @self.channel.on("message")
        def on_message(message: str | bytes) -> None:
            self.inbox.put_nowait((loop.time(), message if isinstance(message, str) else message.decode()))

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            assert (frame.sample_rate, frame.samples) == (48000, 960)
            self.audio.append((loop.time(), downmix(frame)))

    async def offer(self, fmtp: str | None = FMTP_16K) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        if fmtp is not None:
            sdp = re.sub(r"(a=rtpmap:(\d+) opus/48000/2\r\n)", lambda m: f"{m.group(1)}a=fmtp:{m.group(2)} {fmtp}\r\n",
                         sdp)
        return sdp

    async def connect(self, http: aiohttp.ClientSession, url: str, session: Json | None = None,
                      raw: bool = False) -> None:
        sdp = await self.offer()
        if raw:
            response = await http.post(url, data=sdp, headers={**AUTH, "Content-Type": "application/sdp"})
        else:
            form = aiohttp.FormData()
            form.add_field("sdp", sdp, content_type="application/sdp")
            if session is not None:
                form.add_field("session", json.dumps(session), content_type="application/json")
            response = await http.post(url, data=form, headers=AUTH)
        answer = await response.text()
        assert response.status == 201, answer
        assert response.content_type == "application/sdp"
        self.location = response.headers["Location"]
        assert re.fullmatch(rf"{CALLS_PATH}/rtc_\w+", self.location)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def send(self, event: Json) -> None:
        self.channel.send(client(event))

    async def until(self, event_type: str, timeout: float = 5.0) -> list[Json]:
        """Events up to and including the next `event_type`, each validated against the models."""
        out: list[Json] = []
        async with asyncio.timeout(timeout):
            while True:
                t, text = await self.inbox.get()
                event = check_server(text)
                self.events.append((t, event))
                out.append(event)
                if event["type"] == event_type:
                    return out

    def at(self, event_type: str) -> float:
        return next(t for t, e in self.events if e["type"] == event_type)

    def loud_frames(self, start: float = -math.inf, end: float = math.inf, dbfs: float = -35.0) -> int:
        return sum(1 for t, f in self.audio if start <= t <= end and rms_dbfs(f) > dbfs)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def loopback_only() -> None:
    restrict_ice_to(["127.0.0.1"])


SESSION_300MS = {"type": "realtime", "model": "gpt-realtime", "instructions": "Answer briefly.",
                 "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}},
                           "output": {"voice": "marin"}}}


async def test_loopback_turn_over_webrtc(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(response_ms=1500, speed=4.0), keep_input_audio=True)
    await server.start()
    caller = Caller()
    try:
        async with asyncio.timeout(9):
            await caller.connect(http, server.url, session=SESSION_300MS)
            [created] = await caller.until("session.created")
            s = created["session"]
            assert (s["instructions"], s["audio"]["output"]["voice"]) == ("Answer briefly.", "marin")
            assert s["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 300
            caller.mic.play(np.zeros(4800, dtype=np.int16))
            caller.mic.play(speech_like(1000, 16000))
            turn = await caller.until("output_audio_buffer.stopped")
            await asyncio.sleep(0.2)
        names = types(turn)
        order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                 "input_audio_buffer.committed", "conversation.item.added", "response.created",
                 "response.output_item.added", "response.content_part.added", "output_audio_buffer.started",
                 "response.output_audio_transcript.done", "response.done", "output_audio_buffer.stopped"]
        assert [names.index(n) for n in order] == sorted(names.index(n) for n in order), names
        assert "response.output_audio.delta" not in names
        done = turn[names.index("response.done")]["response"]
        assert done["status"] == "completed"
        stopped_event = turn[-1]
        assert stopped_event["response_id"] == done["id"] == turn[names.index("output_audio_buffer.started")][
            "response_id"]
        # the answer arrived as audio on the track, in real time, between started and stopped
        t_started, t_stopped = caller.at("output_audio_buffer.started"), caller.at("output_audio_buffer.stopped")
        assert t_stopped - t_started == pytest.approx(1.5, abs=0.15)
        loud = caller.loud_frames()
        assert loud == caller.loud_frames(t_started - 0.05, t_stopped + 0.25)
        # an aiortc receiver holds the last 4 frames until more packets arrive (idle_audio="none")
        assert 70 <= loud <= 75
        peak = max(rms_dbfs(f) for _, f in caller.audio)
        assert -20.0 < peak < -3.0
        # observations
        [call] = server.calls
        assert call.offer_fmtp["maxplaybackrate"] == "16000" and call.offer_fmtp["useinbandfec"] == "1"
        assert call.received_events == []
        assert [e["type"] for e in call.sent_events][:1] == ["session.created"]
        assert call.sent_events[-1]["type"] == "output_audio_buffer.stopped"
        assert call.frames_received >= 80
        assert call.audio_received_s == pytest.approx(call.frames_received * 0.020)
        assert call.input_audio.size == call.frames_received * 960
        assert call.frames_sent == 75 and call.audio_sent_s == pytest.approx(1.5)
        assert call.session.responses[-1]["status"] == "completed"
        assert rms_dbfs(call.session.last_utterance) > -25.0
    finally:
        await caller.close()
        await server.close()


async def test_loopback_barge_in_cancels_and_clears(http: aiohttp.ClientSession) -> None:
    config = FakeRealtimeConfig(response_ms=4000, speed=1.0)
    session = {"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "create_response": False, "silence_duration_ms": 300}}}}
    server = FakeRealtimeWebRtcServer(config)
    await server.start()
    caller = Caller()
    try:
        async with asyncio.timeout(9):
            await caller.connect(http, server.url, session=session)
            await caller.until("session.created")
            caller.send({"type": "response.create", "event_id": "evt_go"})
            await caller.until("output_audio_buffer.started")
            await asyncio.sleep(0.8)
            caller.mic.play(speech_like(400, 16000))
            barge = await caller.until("conversation.item.truncated")
            await asyncio.sleep(0.6)
        names = types(barge)
        assert names[0] == "input_audio_buffer.speech_started"
        done = barge[names.index("response.done")]["response"]
        assert (done["status"], done["status_details"]["reason"]) == ("cancelled", "turn_detected")
        assert barge[names.index("output_audio_buffer.cleared")]["response_id"] == done["id"]
        truncated = barge[-1]
        assert truncated["item_id"] == done["output"][0]["id"]
        assert 700 <= truncated["audio_end_ms"] <= 1600
        assert "output_audio_buffer.stopped" not in types([e for _, e in caller.events])
        t_cleared = caller.at("output_audio_buffer.cleared")
        assert caller.loud_frames(start=t_cleared + 0.1) == 0
        assert caller.loud_frames(end=t_cleared) * 20 >= 600
        [call] = server.calls
        assert call.received_events == [{"type": "response.create", "event_id": "evt_go"}]
        assert call.session.server_truncations == [{"item_id": truncated["item_id"], "content_index": 0,
                                                    "audio_end_ms": truncated["audio_end_ms"]}]
    finally:
        await caller.close()
        await server.close()


async def test_loopback_echo_returns_what_the_caller_said(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(echo=True, speed=4.0))
    await server.start()
    caller = Caller()
    try:
        async with asyncio.timeout(9):
            await caller.connect(http, server.url, raw=True)
            await caller.until("session.created")
            caller.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}})
            await caller.until("session.updated")
            utterance = intoned(1200, 16000)
            caller.mic.play(np.zeros(8000, dtype=np.int16))
            caller.mic.play(utterance)
            turn = await caller.until("output_audio_buffer.stopped")
            await asyncio.sleep(0.2)
        [call] = server.calls
        assert call.offer_fmtp["maxplaybackrate"] == "16000"
        t_started = caller.at("output_audio_buffer.started")
        returned = np.concatenate([f for t, f in caller.audio if t >= t_started - 0.05]).astype(np.float64)
        reference = upsample(utterance, 3)
        score, lag = xcorr_peak(reference, returned)
        assert score > 0.8, score
        print(f"echo: normalised cross-correlation {score:.3f} at lag {lag / RATE * 1000:.1f} ms")
        # the echo starts with the VAD's 300 ms prefix padding, plus the two Opus encoders' lookahead
        assert next(e for e in turn if e["type"] == "input_audio_buffer.speech_started")["audio_start_ms"] > 0
        assert 0.30 * RATE <= lag <= 0.34 * RATE, lag
        assert abs(call.session.last_utterance.size - (1.2 + 0.3 + 0.3) * RATE) <= 2 * 960
    finally:
        await caller.close()
        await server.close()


async def test_openai_sdk_calls_create_is_accepted(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer()
    await server.start()
    caller = Caller()
    try:
        sdk = AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
        sdp = await caller.offer()
        response = await sdk.realtime.calls.create(sdp=sdp, session={
            "type": "realtime", "model": "gpt-realtime", "instructions": "From the SDK."})
        answer = response.text
        assert answer.startswith("v=0")
        await caller.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        [created] = await caller.until("session.created")
        assert created["session"]["instructions"] == "From the SDK."
        [call] = server.calls
        assert call.answer_sdp == answer and "useinbandfec" in call.offer_fmtp
        hung = await http.post(f"{server.base_url}{CALLS_PATH}/{call.call_id}/hangup", headers=AUTH)
        assert hung.status == 200
        assert call.ended.is_set()
        await sdk.close()
    finally:
        await caller.close()
        await server.close()


async def test_http_errors(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(api_key="sk-test"))
    await server.start()
    caller = Caller()
    try:
        sdp = await caller.offer()

        async def post(data: Any, headers: dict[str, str] | None = None) -> tuple[int, Json]:
            response = await http.post(server.url, data=data, headers=AUTH if headers is None else headers)
            return response.status, await response.json()

        def form(**fields: str) -> aiohttp.FormData:
            data = aiohttp.FormData()
            for name, value in fields.items():
                data.add_field(name, value, content_type="application/sdp" if name == "sdp" else "application/json")
            return data

        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic sk-test"},
                        {"Authorization": "Bearer sk-wrong"}):
            status, body = await post(form(sdp=sdp), headers)
            assert status == 401 and body["error"]["type"] == "invalid_request_error", (headers, body)
        cases: list[tuple[Any, dict[str, str] | None, str | None]] = [
            (form(session=json.dumps({"type": "realtime"})), None, "sdp"),
            (form(sdp="hello"), None, "sdp"),
            (form(sdp=sdp, session="{not json"), None, "session"),
            (form(sdp=sdp, session="[1]"), None, "session"),
            (form(sdp=sdp, session=json.dumps({"type": "transcription"})), None, "session.type"),
            (form(sdp=sdp, session=json.dumps({"type": "realtime", "audio": {"output": {"format": {
                "type": "audio/opus"}}}})), None, "session.audio.output.format"),
            (form(sdp=re.sub(r"opus/48000/2", "telephone-event/48000", sdp)), None, "sdp"),
            (sdp, {**AUTH, "Content-Type": "text/plain"}, None),
            (b"--x\r\nbroken", {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}, None),
        ]
        for data, bad_headers, param in cases:
            status, body = await post(data, bad_headers)
            assert status == 400, body
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert body["error"]["param"] == param, body
        assert server.calls == []
        created = await http.post(server.url, data=form(sdp=sdp, session=json.dumps({"type": "realtime"})),
                                  headers=AUTH)
        assert created.status == 201 and len(server.calls) == 1
        missing = await http.post(f"{server.base_url}{CALLS_PATH}/rtc_nope/hangup", headers=AUTH)
        assert missing.status == 404
    finally:
        await caller.close()
        await server.close()


# -- the command ----------------------------------------------------------------------------------


async def test_encode_once_sends_every_call_the_same_packets(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(response_ms=1000, speed=4.0), encode_once=True)
    await server.start()
    sizes = []
    try:
        for _ in range(2):
            caller = Caller()
            try:
                async with asyncio.timeout(9):
                    await caller.connect(http, server.url, session=SESSION_300MS)
                    await caller.until("session.created")
                    caller.mic.play(speech_like(1000, 16000))
                    await caller.until("output_audio_buffer.stopped")
                    await asyncio.sleep(0.2)
                # the answer is heard, real Opus either way (this aiortc client holds its last 4 frames)
                assert caller.loud_frames() >= 40
            finally:
                await caller.close()
            assert server.shared_packets is not None
            sizes.append(len(server.shared_packets))
        assert [c.frames_sent for c in server.calls] == [50, 50]
        # the first call encoded each distinct 20 ms of the answer once; the second encoded nothing
        assert 0 < sizes[0] <= 50 and sizes[1] == sizes[0]
    finally:
        await server.close()


def test_cli_webrtc_and_echo_options() -> None:
    import argparse

    from bridge.cli import fake_realtime as fake_realtime_cmd

    parser = argparse.ArgumentParser(prog="mosbridge")
    fake_realtime_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fake-realtime"])
    assert (args.webrtc_port, args.no_webrtc, args.echo, args.idle_audio, args.opus_bitrate, args.encode_once) == (
        8766, False, False, "none", 32000, False)
    args = parser.parse_args(["fake-realtime", "--webrtc-port", "0", "--echo", "--idle-audio", "silence",
                              "--opus-bitrate", "24000", "--no-webrtc", "--encode-once"])
    assert (args.webrtc_port, args.no_webrtc, args.echo, args.idle_audio, args.opus_bitrate, args.encode_once) == (
        0, True, True, "silence", 24000, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["fake-realtime", "--idle-audio", "noise"])


async def test_cli_serves_both_transports_from_one_process(http: aiohttp.ClientSession) -> None:
    import signal
    import sys

    from websockets.asyncio.client import connect

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "fake-realtime", "--port", "0", "--webrtc-port", "0", "--echo",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    caller = Caller()
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(9):
            ws_line = (await proc.stdout.readline()).decode()
            rtc_line = (await proc.stdout.readline()).decode()
            ws_url = re.search(r"ws://\S+", ws_line)
            calls_url = re.search(r"http://\S+", rtc_line)
            assert ws_url and calls_url, (ws_line, rtc_line)
            async with connect(ws_url.group(0), additional_headers=AUTH) as ws:
                assert check_server(str(await ws.recv()))["type"] == "session.created"
            await caller.connect(http, calls_url.group(0))
            [created] = await caller.until("session.created")
            assert created["session"]["type"] == "realtime"
    finally:
        await caller.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await proc.wait() == 0


@pytest.mark.parametrize("idle_audio", ["none", "silence"])
async def test_loopback_idle_audio_between_responses(http: aiohttp.ClientSession, idle_audio: str) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(response_ms=600, speed=4.0),
                                      idle_audio="silence" if idle_audio == "silence" else "none")
    await server.start()
    caller = Caller()
    try:
        async with asyncio.timeout(9):
            await caller.connect(http, server.url)
            await caller.until("session.created")
            await asyncio.sleep(0.3)
            before = len(caller.audio)
            caller.send({"type": "response.create"})
            await caller.until("output_audio_buffer.stopped")
            await asyncio.sleep(0.4)
        [call] = server.calls
        if idle_audio == "none":
            # nothing before or after the answer; and an aiortc receiver (JitterBuffer prefetch=4)
            # releases a frame only once 4 more have arrived, so the answer's last 80 ms wait for
            # the next answer's packets
            assert before == 0 and call.frames_sent == 30
            assert len(caller.audio) == call.frames_sent - 4
            assert caller.loud_frames() <= 26
        else:
            t_stopped = caller.at("output_audio_buffer.stopped")
            assert before >= 5 and caller.loud_frames() >= 29
            assert any(t > t_stopped + 0.1 and rms_dbfs(f) < -60 for t, f in caller.audio)
            assert call.frames_sent > 30
    finally:
        await caller.close()
        await server.close()


def rtp_opus(encoder: opuslib.Encoder, mono: Int16Array, seq: int, timestamp: int) -> RtpPacket:
    """20 ms of caller audio as the bridge sends it: one Opus packet in RTP (48 kHz clock)."""
    payload = bytes(encoder.encode(mono.astype("<i2").tobytes(), FRAME))
    return RtpPacket(payload_type=111, sequence_number=seq, timestamp=timestamp, payload=payload)


async def test_rtp_timestamp_gaps_are_silence_on_the_vad_clock() -> None:
    from bridge.stand_ins.realtime_webrtc import FakeWebRtcCall

    session = FakeRealtimeSession(FakeRealtimeConfig(), 0.0, random.Random(0), transport="webrtc", track_rate=RATE)
    call = FakeWebRtcCall(call_id="rtc_x", session=session, pc=RTCPeerConnection(), offer_sdp="", offer_fmtp={})
    try:
        speech = speech_like(400, RATE)
        encoder = opuslib.Encoder(RATE, 1, opuslib.APPLICATION_VOIP)
        base = 2**32 - 5 * FRAME  # the 32-bit RTP timestamp wraps on the way
        for i in range(20):
            call.on_packet(rtp_opus(encoder, speech[i * FRAME:(i + 1) * FRAME], i, (base + i * FRAME) % 2**32))
        assert "input_audio_buffer.speech_stopped" not in [json.loads(t)["type"] for t in call._outbox]
        # the sender stops for 600 ms (DTX, loss): the next packet's timestamp says so
        call.on_packet(rtp_opus(encoder, np.zeros(FRAME, dtype=np.int16), 20, (base + 50 * FRAME) % 2**32))
        sent = [json.loads(t) for t in call._outbox]
        stopped = next(e for e in sent if e["type"] == "input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 400 + 500
        assert call.gap_filled_s == pytest.approx(0.6)
        assert call.frames_received == 21 and call.audio_received_s == pytest.approx(0.42)
        call.on_packet(RtpPacket(payload_type=111, sequence_number=21, timestamp=0, payload=b"\xff"))
        assert call.bad_packets == 1 and call.frames_received == 21
    finally:
        await call.close()


async def test_session_expiry_ends_the_call(http: aiohttp.ClientSession) -> None:
    server = FakeRealtimeWebRtcServer(FakeRealtimeConfig(session_expire_after_s=0.5))
    await server.start()
    caller = Caller()
    try:
        async with asyncio.timeout(9):
            await caller.connect(http, server.url)
            await caller.until("session.created")
            [err] = await caller.until("error")
            assert err["error"]["code"] == "session_expired"
            await server.calls[0].ended.wait()
            while caller.pc.connectionState not in ("closed", "failed"):
                await asyncio.sleep(0.05)
    finally:
        await caller.close()
        await server.close()
