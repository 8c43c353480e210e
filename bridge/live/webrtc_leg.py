"""The AI leg over WebRTC (aiortc): how ``opus16k`` reaches OpenAI Realtime.

OpenAI's WebSocket interface takes only PCM 24 kHz and G.711; Opus goes over WebRTC. For each
call the bridge creates a peer connection with one audio transceiver and the ``oai-events`` data
channel, POSTs the SDP offer with the session config to the Realtime calls endpoint
(``POST /v1/realtime/calls``, multipart ``sdp`` + ``session``) and applies the SDP answer.

- Caller audio leaves as the Opus packets the call core's transcoder made (16 kHz, 20 ms),
  sent as they are: the track hands aiortc ``av.Packet``s, so nothing is decoded or re-encoded.
  The offer's fmtp says so: ``sprop-maxcapturerate=16000`` for what we send and
  ``maxplaybackrate=16000`` for what we want back (RFC 7587 §7).
- The AI's audio is taken as RTP packets, before aiortc's receive buffer and decoder thread
  (:class:`PacketTap`): the call core decodes each Opus payload to 8 kHz the moment it arrives.
  aiortc's path would hold 80 ms in its jitter buffer (and an answer's last 80 ms until more
  packets came), hand every packet to a thread, and decode at 48 kHz stereo.
- Events are the GA events, as text on the data channel.
- RTP figures (packets, loss, jitter, RTCP round trip) come from aiortc's ``getStats()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import aiortc
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from av.packet import Packet

log = logging.getLogger("mosbridge.webrtc")

EVENTS_CHANNEL = "oai-events"
RTP_CLOCK = 48000
SAMPLES_PER_PACKET = 960  # 20 ms on the 48 kHz RTP clock, whatever the Opus bandwidth
OPUS_FMTP = "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1;minptime=10"
CONNECT_TIMEOUT_S = 10.0
MAX_QUEUED_PACKETS = 50  # 1 s of caller audio waiting for the track


class WebRtcError(Exception):
    """The leg could not be set up (HTTP error, bad answer, ICE/DTLS failure, timeout)."""


def with_opus_fmtp(sdp: str, fmtp: str = OPUS_FMTP) -> str:
    """The SDP with an ``a=fmtp`` line for every Opus payload type that lacks one (aiortc does not
    let a codec preference carry parameters, so the offer text is amended, as browsers' apps do)."""
    lines = sdp.split("\r\n")
    have = {line.split(":", 1)[1].split(" ", 1)[0] for line in lines if line.startswith("a=fmtp:")}
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("a=rtpmap:") and " opus/48000" in line.lower():
            pt = line[len("a=rtpmap:"):].split(" ", 1)[0]
            if pt not in have:
                out.append(f"a=fmtp:{pt} {fmtp}")
    return "\r\n".join(out)


class OpusPacketTrack(MediaStreamTrack):
    """An audio track of ready-made Opus packets: each one is sent as it is queued."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Packet[Any]] = asyncio.Queue(MAX_QUEUED_PACKETS)
        self._pts = 0
        self.dropped = 0

    def put(self, opus: bytes) -> None:
        packet = Packet(opus)
        packet.pts = self._pts
        packet.time_base = fractions.Fraction(1, RTP_CLOCK)
        self._pts += SAMPLES_PER_PACKET
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            self.dropped += 1  # the transport is stuck; old audio is worth nothing

    async def recv(self) -> Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._queue.get()


class PacketTap:
    """Stands in for an aiortc receiver's jitter buffer and hands each RTP packet on as it comes.

    aiortc's ``RTCRtpReceiver`` keeps its per-source statistics and RTCP receiver reports, then
    gives every packet to its jitter buffer: this one returns no frame, so aiortc's decoder
    thread stays idle, and passes each packet with a payload to ``on_packet``.
    """

    def __init__(self, on_packet: Callable[[RtpPacket], None]) -> None:
        self._on_packet = on_packet

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        if packet.payload:
            self._on_packet(packet)
        return False, None

    @classmethod
    def install(cls, receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
        """Put a tap in ``receiver`` (aiortc's private attribute; pinned version, checked here)."""
        attr = "_RTCRtpReceiver__jitter_buffer"
        if not hasattr(receiver, attr):
            raise RuntimeError(f"aiortc {aiortc.__version__}: RTCRtpReceiver has no jitter buffer to tap")
        setattr(receiver, attr, cls(on_packet))


class WebRtcLeg:
    """One call's AI leg. ``on_event(text)``, ``on_packet(seq, opus)`` and ``on_closed(reason)``
    are called on the event loop; ``opus`` is one RTP packet's payload, ``seq`` its RTP
    sequence number."""

    def __init__(self, http: aiohttp.ClientSession, calls_url: str, api_key: str, session: dict[str, Any], *,
                 on_event: Callable[[str], None], on_packet: Callable[[int, bytes], None],
                 on_closed: Callable[[str], None], stun_url: str | None = None) -> None:
        self._http = http
        self._calls_url = calls_url
        self._api_key = api_key
        self._session = session
        self._on_event = on_event
        self._on_closed = on_closed
        servers = [RTCIceServer(stun_url)] if stun_url else []
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.track = OpusPacketTrack()
        transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        PacketTap.install(transceiver.receiver, lambda p: on_packet(p.sequence_number, p.payload))
        self.channel = self.pc.createDataChannel(EVENTS_CHANNEL)
        self._open = asyncio.Event()
        self._closed = False
        self.location: str | None = None
        self.channel.on("open", self._open.set)
        self.channel.on("message", self._message)
        self.channel.on("close", lambda: self._close("data channel closed"))
        self.pc.on("connectionstatechange", self._state)

    async def connect(self, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """Offer, answer, and wait until the data channel is open."""
        try:
            await asyncio.wait_for(self._connect(), timeout_s)
        except TimeoutError:
            raise WebRtcError(f"WebRTC leg not up within {timeout_s:.0f} s") from None

    async def _connect(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = with_opus_fmtp(self.pc.localDescription.sdp)
        form = aiohttp.FormData()
        form.add_field("sdp", offer)
        form.add_field("session", json.dumps(self._session), content_type="application/json")
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            async with self._http.post(self._calls_url, data=form, headers=headers) as resp:
                body = await resp.text()
                if resp.status not in (200, 201):
                    raise WebRtcError(f"POST {self._calls_url}: HTTP {resp.status}: {body[:300]}")
                self.location = resp.headers.get("Location")
        except aiohttp.ClientError as e:
            raise WebRtcError(f"POST {self._calls_url}: {e}") from e
        if not body.startswith("v=0"):
            raise WebRtcError(f"POST {self._calls_url}: the answer is not SDP: {body[:100]!r}")
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        await self._open.wait()

    def send_event(self, text: str) -> None:
        if self.channel.readyState == "open":
            self.channel.send(text)

    def send_audio(self, opus: bytes) -> None:
        self.track.put(opus)

    @property
    def closed(self) -> bool:
        return self._closed

    async def stats(self) -> dict[str, float | int | None]:
        """The leg's RTP figures: what we sent and the far end's RTCP receiver report about it,
        and what we received (RFC 3550 jitter in ms, packets lost, RTCP round trip in ms)."""
        out: dict[str, float | int | None] = {}
        report = await self.pc.getStats()
        for s in report.values():
            kind = type(s).__name__
            if kind == "RTCOutboundRtpStreamStats":
                out["packets_sent"] = s.packetsSent
            elif kind == "RTCRemoteInboundRtpStreamStats":
                out["remote_packets_lost"] = s.packetsLost
                out["remote_jitter_ms"] = 1000.0 * s.jitter / RTP_CLOCK  # RTCP reports it in timestamp units
                out["rtt_ms"] = None if s.roundTripTime is None else 1000.0 * s.roundTripTime
                out["remote_fraction_lost"] = s.fractionLost
            elif kind == "RTCInboundRtpStreamStats":
                out["packets_received"] = s.packetsReceived
                out["packets_lost"] = s.packetsLost
                out["jitter_ms"] = 1000.0 * s.jitter / RTP_CLOCK
        out["packets_dropped_before_send"] = self.track.dropped
        return out

    async def close(self) -> None:
        self._closed = True
        self.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()

    # -- callbacks ----------------------------------------------------------------------

    def _message(self, message: str | bytes) -> None:
        self._on_event(message if isinstance(message, str) else message.decode("utf-8", "replace"))

    def _state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._close(f"peer connection {self.pc.connectionState}")

    def _close(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self._on_closed(reason)
