"""The AI leg of a live call behind one interface: the Realtime WebSocket (``pcmu``, ``pcm24k``)
and WebRTC (``opus16k``).

The call driver opens a leg, applies what :meth:`AiLeg.receive` yields to the core (in arrival
order), hands it the core's outgoing AI items, pings it, and closes it; it never asks which kind
of leg it holds. A leg never raises into the driver for a peer's failure: ``connect`` raises
:class:`AiConnectFailed` with the reason, and ``receive`` ends, leaving ``closed_reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import WSMsgType

from bridge.core.events import Outgoing
from bridge.core.inputs import AiIn, AiPacketIn, AiRtp, AiRtt
from bridge.live.aiohttp_internals import ArrivalClock, TextWriter, client_protocol
from bridge.live.turns import Turn
from bridge.live.webrtc_leg import WebRtcError, WebRtcLeg

log = logging.getLogger(__name__)

# aiohttp's own cap on a WebSocket message, as a multiple of the bridge's content limit: the core
# logs and counts a message over the limit; the transport only refuses what is far beyond it
TRANSPORT_CAP_FACTOR = 16


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to one of the driver's pings (its payload), arrived on the AI leg."""

    payload: bytes


AiItem = AiIn | AiPacketIn | AiRtp | AiRtt | Pong


class AiConnectFailed(Exception):
    """The leg could not be opened; the message is the reason the core is given."""


class AiLeg(Protocol):
    """One AI session: connect, receive until it ends, send, close."""

    closed_reason: str

    async def connect(self) -> None:
        """Open the session, or raise :class:`AiConnectFailed`."""

    def receive(self) -> AsyncIterator[AiItem]:
        """What the AI sends, in arrival order, until the session ends (then ``closed_reason``)."""
        ...

    async def send(self, batch: list[Outgoing]) -> None:
        """Send the core's items for the AI, in order; a closed leg drops them."""

    def send_now(self, batch: list[Outgoing]) -> bool:
        """Send the batch without waiting, if the leg can take it all at once (a closed leg drops it);
        False, with nothing sent, if it cannot: flow control has pushed back, or the transport would
        wait (then :meth:`send` must be awaited)."""
        ...

    def send_text_now(self, text: str) -> bool:
        """:meth:`send_now` of one text message (a caller frame's append): sent, or False with
        nothing sent."""
        ...

    async def ping(self, payload: bytes) -> bool:
        """Send a ping whose pong :meth:`receive` yields; False if this leg does not ping."""
        ...

    def arrived(self) -> float | None:
        """When the item :meth:`receive` yielded last reached the process (monotonic), as close to
        the socket as the transport lets us see; None if unknown."""
        ...

    async def close(self) -> None:
        """Close the session (idempotent)."""


@dataclass(frozen=True, slots=True)
class WsTarget:
    """Where and how the Realtime WebSocket leg connects."""

    url: str
    api_key: str
    connect_timeout_s: float
    max_message_bytes: int


class RealtimeWsLeg:
    """The Realtime WebSocket (``wss://…/v1/realtime?model=…``), GA event protocol as text."""

    def __init__(self, http: aiohttp.ClientSession, target: WsTarget) -> None:
        self._http = http
        self._target = target
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._arrival: ArrivalClock | None = None
        self._text: TextWriter | None = None
        self._last: float | None = None
        self.closed_reason = "not connected"

    @property
    def ws(self) -> aiohttp.ClientWebSocketResponse | None:
        """The open socket (None before ``connect``)."""
        return self._ws

    async def connect(self) -> None:
        t = self._target
        try:
            self._ws = await asyncio.wait_for(
                self._http.ws_connect(t.url, headers={"Authorization": f"Bearer {t.api_key}"}, autoping=False,
                                      heartbeat=None, max_msg_size=t.max_message_bytes * TRANSPORT_CAP_FACTOR),
                t.connect_timeout_s)
        except TimeoutError:
            raise AiConnectFailed(f"connect timed out after {t.connect_timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AiConnectFailed(f"connect failed: {exc}") from None
        self._arrival = ArrivalClock(client_protocol(self._ws))
        self._text = TextWriter(self._ws)

    async def receive(self) -> AsyncIterator[AiItem]:
        ws, arrival = self._ws, self._arrival
        assert ws is not None and arrival is not None
        turn = Turn()
        while True:
            before = time.monotonic()
            msg = await ws.receive()
            if turn.over(before, time.monotonic()):
                await asyncio.sleep(0)
                turn.restart()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            self._last = arrival.stamp()
            if msg.type is WSMsgType.TEXT:
                yield AiIn(msg.data)
            elif msg.type is WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                yield Pong(bytes(msg.data))
        self.closed_reason = f"close code {ws.close_code}"

    def arrived(self) -> float | None:
        return self._last

    async def send(self, batch: list[Outgoing]) -> None:
        ws = self._ws
        for item in batch:
            if ws is None or ws.closed:
                return
            try:  # noqa: SIM105 -- per frame: contextlib.suppress costs an object and two calls
                await ws.send_str(item.text)
            except (ConnectionError, RuntimeError):
                pass

    def send_now(self, batch: list[Outgoing]) -> bool:
        ws, text = self._ws, self._text
        if ws is None or ws.closed:
            return True
        if text is None or not text.ready():
            return False
        try:  # a batch that pauses the transport is written whole: the next one waits
            if len(batch) == 1:
                text.write(batch[0].text)
            else:
                text.write_all([item.text for item in batch])
        except ConnectionError:
            pass  # closing: the rest is dropped, as send drops it
        return True

    def send_text_now(self, text: str) -> bool:
        ws, writer = self._ws, self._text
        if ws is None or ws.closed:
            return True
        if writer is None:
            return False
        try:
            return writer.write_if_ready(text)
        except ConnectionError:
            return True  # closing: dropped, as send drops it

    async def ping(self, payload: bytes) -> bool:
        ws = self._ws
        if ws is None or ws.closed:
            return False
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.ping(payload)
        return True

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()


@dataclass(frozen=True, slots=True)
class RtcTarget:
    """Where and how the WebRTC leg connects, and how often it reads its RTP figures."""

    calls_url: str
    api_key: str
    session: dict[str, Any]
    stun_url: str | None
    stats_period_s: float


class RealtimeRtcLeg:
    """WebRTC (:class:`~bridge.live.webrtc_leg.WebRtcLeg`): Opus on the track, GA events on the data
    channel. Its callbacks and a periodic read of the RTP figures feed one queue, so events, audio and
    figures reach the core in the order they came; RTCP's round trip stands for a ping's."""

    def __init__(self, http: aiohttp.ClientSession, target: RtcTarget) -> None:
        self._inbox: asyncio.Queue[tuple[AiItem | str, float]] = asyncio.Queue()
        self._period_s = target.stats_period_s
        self._leg = WebRtcLeg(http, target.calls_url, target.api_key, target.session,
                              on_event=lambda text: self._put(AiIn(text)),
                              on_packet=lambda seq, opus: self._put(AiPacketIn(seq, opus)),
                              on_closed=self._put, stun_url=target.stun_url)
        self._last: float | None = None
        self._stats: asyncio.Task[None] | None = None
        self.closed_reason = "not connected"

    async def connect(self) -> None:
        try:
            await self._leg.connect()
        except (WebRtcError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise AiConnectFailed(f"connect failed: {exc}") from None
        self._stats = asyncio.create_task(self._read_stats())

    def _put(self, item: AiItem | str) -> None:
        """Queue what aiortc handed over, stamped now: its callbacks run as the packet is read."""
        self._inbox.put_nowait((item, time.monotonic()))

    async def receive(self) -> AsyncIterator[AiItem]:
        while True:
            item, self._last = await self._inbox.get()
            if isinstance(item, str):
                self.closed_reason = item
                return
            yield item

    def arrived(self) -> float | None:
        return self._last

    async def _read_stats(self) -> None:
        last_rtt: float | None = None
        while True:
            await asyncio.sleep(self._period_s)
            try:
                stats = await self._leg.stats()
            except Exception as exc:  # aiortc internals: a failed read is not worth the call
                log.warning("WebRTC stats unavailable: %s", exc)
                continue
            self._put(AiRtp(stats))
            rtt = stats.get("rtt_ms")
            if isinstance(rtt, float) and rtt != last_rtt:
                last_rtt = rtt
                self._put(AiRtt(rtt))

    async def send(self, batch: list[Outgoing]) -> None:
        self.send_now(batch)

    def send_now(self, batch: list[Outgoing]) -> bool:
        for item in batch:
            if item.audio is not None:
                self._leg.send_audio(item.audio)
            else:
                self._leg.send_event(item.text)
        return True

    def send_text_now(self, text: str) -> bool:
        return False  # caller audio on this leg is the Opus track, never text: the general path

    async def ping(self, payload: bytes) -> bool:
        return False

    async def close(self) -> None:
        if self._stats is not None:
            self._stats.cancel()
        await self._leg.close()
