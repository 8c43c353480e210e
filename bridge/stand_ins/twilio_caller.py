"""A stand-in for Twilio's side of a bidirectional Media Stream, for tests, replay and load runs.

:class:`TwilioPlayout` is sans-I/O and models what Twilio documents: media we are sent is queued
and played at 20 ms per frame; a ``mark`` is echoed once the audio queued before it has played
(at once if nothing is queued); ``clear`` drops the queue and echoes every pending mark at once.
:class:`SimulatedCaller` is the asyncio driver: it connects to ``/media`` like Twilio (signed
upgrade), sends ``connected``/``start``, paces caller frames on a schedule (with loss and delay
injected by the caller of this class), plays what comes back and echoes marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from bridge.codecs.g711 import FRAME_BYTES
from bridge.protocols import twilio as tw
from bridge.stand_ins.frame_pacer import FramePacer, PacedStream, writer_for

FRAME_S = 0.020


@dataclass
class TwilioPlayout:
    stream_sid: str
    played: bytearray = field(default_factory=bytearray)
    # (kind, value, queued_at): kind "media" carries audio bytes, "mark" a name
    _queue: deque[tuple[str, bytes | str, float]] = field(default_factory=deque)
    _play_until: float = 0.0
    _seq: int = 1000
    clears: int = 0
    frames_received: int = 0  # 20 ms frames of media received, however many a message carried
    marks_echoed: list[str] = field(default_factory=list)
    frame_starts: list[float] | None = None  # a list: when each 160 bytes of the played stream started
    on_audio: Callable[[bytes], None] | None = None  # called with each media message's audio as it arrives

    def receive(self, text: str, now: float) -> list[str]:
        """One message from the bridge (read with ``bridge.protocols.twilio``); returns messages to send back now."""
        msg = tw.parse_twilio_outbound(text)
        if isinstance(msg, tw.OutboundMedia):
            audio = msg.audio()  # any length: Twilio plays it in order, 160 bytes per 20 ms
            if self.on_audio is not None:
                self.on_audio(audio)
            for i in range(0, len(audio), FRAME_BYTES):
                self._queue.append(("media", audio[i:i + FRAME_BYTES], now))
            self.frames_received += -(-len(audio) // FRAME_BYTES)
        elif isinstance(msg, tw.OutboundMark):
            self._queue.append(("mark", msg.name, now))
        elif isinstance(msg, tw.ClearMessage):
            self.clears += 1
            names = [str(v) for k, v, _ in self._queue if k == "mark"]
            self._queue.clear()
            self._play_until = now
            return [self._echo(n) for n in names]
        return self.advance(now)

    def advance(self, now: float) -> list[str]:
        """Play queued audio up to ``now`` (a frame leaves the queue once played through);
        echo each mark once the audio before it has played."""
        out: list[str] = []
        while self._queue:
            kind, value, queued_at = self._queue[0]
            if kind == "mark":
                if self._play_until > now:
                    break
                self._queue.popleft()
                out.append(self._echo(str(value)))
                continue
            start = max(self._play_until, queued_at)
            assert isinstance(value, bytes)
            duration = len(value) / 8000  # mu-law at 8 kHz: a short piece plays for less than 20 ms
            if start + duration > now:
                break
            self._queue.popleft()
            if self.frame_starts is not None:
                # the start of each 160-byte frame of the played stream, wherever pieces split it
                offset = len(self.played)
                first = -(-offset // FRAME_BYTES) * FRAME_BYTES
                ends = offset + len(value)
                self.frame_starts.extend(start + (b - offset) / 8000 for b in range(first, ends, FRAME_BYTES))
            self.played += value
            self._play_until = start + duration
        return out

    def next_echo_due(self) -> float | None:
        """When the first queued mark is due to be echoed (None: no mark queued). Until then
        nothing the bridge can see changes, so a driver need not wake for every frame played."""
        until = self._play_until
        for kind, value, queued_at in self._queue:
            if kind == "mark":
                return until
            until = max(until, queued_at) + len(value) / 8000
        return None

    def _echo(self, name: str) -> str:
        self._seq += 1
        self.marks_echoed.append(name)
        return tw.MarkMessage(self._seq, self.stream_sid, name).serialize()


ACCOUNT_SID = "AC" + "0" * 32
CONNECTED = tw.ConnectedMessage("Call", "1.0.0").serialize()


def start_message(stream_sid: str, call_sid: str, params: dict[str, str]) -> str:
    return tw.StartMessage(1, stream_sid, ACCOUNT_SID, stream_sid, call_sid, ("inbound",), dict(params),
                           tw.MediaFormat("audio/x-mulaw", 8000, 1)).serialize()


def stop_message(stream_sid: str, call_sid: str, seq: int) -> str:
    return tw.StopMessage(seq, stream_sid, ACCOUNT_SID, call_sid).serialize()


def media_message(stream_sid: str, seq: int, chunk: int, timestamp_ms: int, payload_b64: str) -> str:
    """A Twilio ``media`` message. As Twilio does: ``seq`` and ``chunk`` count the messages sent
    (never skipping), ``timestamp_ms`` is the frame's media time, which jumps over lost audio."""
    # Built as text: it runs for every frame of every simulated caller, and json.dumps was the load
    # rig's largest cost after its socket writes. base64 needs no escaping.
    return (f'{{"event":"media","sequenceNumber":"{seq}","streamSid":{json.dumps(stream_sid)},'
            f'"media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}",'
            f'"payload":"{payload_b64}"}}}}')


@dataclass(frozen=True)
class ScheduledFrame:
    """A caller frame with media time ``media_ms`` (its ``timestamp``) to send ``send_at``
    seconds after the stream starts; ``text``, when set, is sent verbatim instead (a recorded
    dtmf, say). Loss is a frame not scheduled: its media time is skipped, as Twilio skips it."""

    media_ms: int
    send_at: float
    payload_b64: str
    text: str | None = None


@dataclass
class CallerResult:
    played: bytes
    marks_echoed: list[str]
    clears: int
    received: list[dict[str, object]]  # every message, unless keep_messages=False
    frames_sent: int
    media_received: int = 0  # 20 ms frames of media received
    turn_latency_s: list[float] = field(default_factory=list)
    sent_at: list[tuple[int, float]] = field(default_factory=list)  # (media ms, when it left, s after start)
    messages_sent: int = 0  # every text message, media and marks and the rest
    messages_received: int = 0


class CallerTap(Protocol):
    """Watches one caller's audio with a clock of its own (``bridge.loadtest.caller_view``)."""

    def sent(self, media_ms: int) -> None:
        """The media frame with this timestamp is about to be written to the socket."""

    def received(self, audio: bytes) -> None:
        """A media message's audio has just been read."""

    def hung_up(self) -> None:
        """The caller is sending ``stop``."""


class SimulatedCaller:
    """Acts as Twilio for one call against a running bridge.

    ``pong_delay_s`` delays answers to the bridge's pings (a network delay both ways shows in
    its RTT); ``speech_ends`` lists when the caller stops talking (s after start), to time the
    first AI audio that follows each (the caller's end-to-end view of a turn); ``tap`` sees each
    frame sent and each audio received, stamped by its own clock (load runs); ``pacer`` sends the
    frames, one shared by every caller of a load run (``FramePacer``), else one of its own.
    """

    def __init__(self, url: str, *, stream_sid: str, call_sid: str, params: dict[str, str],
                 headers: dict[str, str] | None = None, pong_delay_s: float = 0.0,
                 speech_ends: Sequence[float] = (), keep_messages: bool = True,
                 tap: CallerTap | None = None, pacer: FramePacer | None = None) -> None:
        self.url = url
        self.pacer = pacer
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.params = params
        self.headers = headers or {}
        self.pong_delay_s = pong_delay_s
        self.speech_ends = sorted(speech_ends)
        self.keep_messages = keep_messages
        self.tap = tap
        self.playout = TwilioPlayout(stream_sid, on_audio=tap.received if tap is not None else None)
        self.t0: float | None = None  # when the stream started, on the event loop's clock
        self.received: list[dict[str, object]] = []
        self.media_received = 0
        self.turn_latency_s: list[float] = []
        self.messages_sent = 0
        self.messages_received = 0

    async def run(self, frames: Sequence[ScheduledFrame], hangup_after_s: float,
                  session: aiohttp.ClientSession) -> CallerResult:
        loop = asyncio.get_running_loop()
        async with session.ws_connect(self.url, headers=self.headers, autoping=False) as ws:
            await ws.send_str(CONNECTED)
            await ws.send_str(start_message(self.stream_sid, self.call_sid, self.params))
            t0 = self.t0 = loop.time()
            lock = asyncio.Lock()
            wake = asyncio.Event()
            pending_turns = list(self.speech_ends)

            writer = writer_for(ws)

            async def send(texts: list[str]) -> None:
                if not texts:
                    return
                async with lock:
                    for text in texts:
                        if ws.closed:  # the bridge hung up: nothing more to say
                            return
                        with contextlib.suppress(ConnectionResetError):
                            if writer.ready():
                                writer.write(text)
                            else:
                                await ws.send_str(text)
                            self.messages_sent += 1

            async def pong(data: bytes) -> None:
                if self.pong_delay_s:
                    await asyncio.sleep(self.pong_delay_s)
                if not ws.closed:
                    with contextlib.suppress(ConnectionResetError):
                        await ws.pong(data)

            async def reader() -> None:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.PING:
                        asyncio.create_task(pong(msg.data))  # noqa: RUF006 - short-lived, ends with the socket
                        continue
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    now = loop.time()
                    self.messages_received += 1
                    if self.keep_messages:
                        self.received.append(json.loads(msg.data))
                    if '"event":"media"' in msg.data:
                        while pending_turns and pending_turns[0] <= now - t0:
                            self.turn_latency_s.append(now - t0 - pending_turns.pop(0))
                    await send(self.playout.receive(msg.data, now))
                    self.media_received = self.playout.frames_received
                    wake.set()

            async def ticker() -> None:
                # wakes for marks only: playing a frame changes nothing the bridge sees
                while True:
                    due = self.playout.next_echo_due()
                    if due is None:
                        wake.clear()
                        await wake.wait()
                        continue
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    await send(self.playout.advance(loop.time()))

            tasks = [asyncio.create_task(reader()), asyncio.create_task(ticker())]
            chunk = 0  # Twilio counts its media messages: the counter never skips
            sent_at: list[tuple[int, float]] = []
            tap = self.tap

            def text(i: int) -> str:
                frame = frames[i]
                return frame.text or media_message(self.stream_sid, i + 2, chunk, frame.media_ms, frame.payload_b64)

            def on_sent(i: int) -> None:
                nonlocal chunk
                frame = frames[i]
                if frame.text is None:
                    chunk += 1
                    if tap is not None:
                        tap.sent(frame.media_ms)
                sent_at.append((frame.media_ms, loop.time() - t0))

            stream = PacedStream(writer, [t0 + f.send_at for f in frames], text, on_sent, lambda: ws.closed)
            try:
                (self.pacer or FramePacer()).add(stream)
                sent = await stream.done
                self.messages_sent += sent
                rest = t0 + hangup_after_s - loop.time()
                if rest > 0:
                    await asyncio.sleep(rest)
                if self.tap is not None:
                    self.tap.hung_up()
                await send([stop_message(self.stream_sid, self.call_sid, len(frames) + 2)])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tasks[0], 5.0)
                self.playout.advance(loop.time())
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        return CallerResult(bytes(self.playout.played), list(self.playout.marks_echoed), self.playout.clears,
                            self.received, sent, self.media_received, list(self.turn_latency_s), sent_at,
                            self.messages_sent, self.messages_received)
