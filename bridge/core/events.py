"""What the call core hands its driver: messages to send and events to act on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bridge.core.report imports this module
    from bridge.core.report import Report


class Peer(enum.StrEnum):  # str-keyed: hashed several times a frame, in C
    TWILIO = "twilio"
    REALTIME = "realtime"


class Direction(enum.StrEnum):
    INBOUND = "inbound"  # caller -> AI
    OUTBOUND = "outbound"  # AI -> caller


@dataclass(slots=True)  # not frozen: several per frame, and frozen __init__ costs 5x
class Outgoing:
    """One message for a peer. ``ingress`` is when the input that caused it arrived, and
    ``direction`` is set for audio, so the driver's send time gives the bridge's latency. Over the
    WebRTC leg caller audio travels as ``audio`` on the track, and events as ``text`` on the data
    channel."""

    peer: Peer
    text: str
    ingress: float
    direction: Direction | None = None
    audio: bytes | None = None  # WebRTC leg: one Opus packet for the audio track (``text`` is then empty)
    frames: int = 1  # 20 ms frames of audio it carries (a Twilio media message may carry several)


@dataclass(frozen=True)
class CallStarted:
    call_sid: str
    stream_sid: str
    tenant: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class Problem:
    """Something the driver should log: bad input, a peer error, a format mismatch."""

    kind: str
    detail: str
    level: str = "warning"


@dataclass(frozen=True)
class ReconnectRealtime:
    """The AI session ended but the call goes on: open a new Realtime connection."""

    reason: str


@dataclass(frozen=True)
class CallEnded:
    reason: str
    report: Report


Event = CallStarted | Problem | ReconnectRealtime | CallEnded
