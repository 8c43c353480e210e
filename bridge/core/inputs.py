"""Everything the call core takes in, as data: one frozen dataclass per input, applied by
:func:`apply`, written to and read from captures in one place.

The live driver records each input (``CaptureRecorder``) and applies it; replay reads the same
inputs back (:func:`from_record`) and applies them with the recorded times, so the two cannot
drift apart: an input kind exists here once, with its capture ``dir`` name next to it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from bridge.core.call import CallCore
from bridge.core.events import Peer
from bridge.protocols.capture import Record


@dataclass(slots=True)  # not frozen: one per message, and frozen __init__ costs 5x
class TwilioIn:
    """One Media Streams message as it came off the socket."""

    text: str | bytes
    DIR: ClassVar[str] = "twilio_in"


@dataclass(slots=True)  # not frozen: one per message, and frozen __init__ costs 5x
class AiIn:
    """One Realtime server event (WebSocket, or the WebRTC leg's data channel)."""

    text: str | bytes
    DIR: ClassVar[str] = "ai_in"


@dataclass(frozen=True, slots=True)
class AiPacketIn:
    """WebRTC leg: one RTP packet of the AI's audio, its sequence number and Opus payload."""

    seq: int
    opus: bytes
    DIR: ClassVar[str] = "ai_packet_in"


@dataclass(frozen=True, slots=True)
class AiAudioIn:
    """WebRTC leg, captures from before the bridge decoded RTP itself: 20 ms of 48 kHz PCM.
    Only such captures name it: the live core has no rule for it, replay's legacy adapter has."""

    pcm: bytes
    DIR: ClassVar[str] = "ai_audio_in"


@dataclass(frozen=True, slots=True)
class Timer:
    """The core's timer fired (``get_timer`` said when)."""

    DIR: ClassVar[str] = "timer"


@dataclass(frozen=True, slots=True)
class TwilioRtt:
    """A WebSocket ping's round trip to Twilio."""

    rtt_ms: float
    DIR: ClassVar[str] = "twilio_rtt"
    PEER: ClassVar[Peer] = Peer.TWILIO


@dataclass(frozen=True, slots=True)
class AiRtt:
    """A round trip to the AI: a WebSocket ping, or the WebRTC leg's RTCP."""

    rtt_ms: float
    DIR: ClassVar[str] = "ai_rtt"
    PEER: ClassVar[Peer] = Peer.REALTIME


@dataclass(frozen=True, slots=True)
class AiConnected:
    DIR: ClassVar[str] = "ai_connected"


@dataclass(frozen=True, slots=True)
class AiClosed:
    reason: str
    DIR: ClassVar[str] = "ai_closed"


@dataclass(frozen=True, slots=True)
class TwilioClosed:
    DIR: ClassVar[str] = "twilio_closed"


@dataclass(frozen=True, slots=True)
class End:
    """The driver ends the call (shutdown, a broken or unresponsive Twilio socket)."""

    reason: str
    DIR: ClassVar[str] = "end"


@dataclass(frozen=True, slots=True)
class AiRtp:
    """WebRTC leg: its latest RTP/RTCP figures."""

    rtp: dict[str, float | int | None]
    DIR: ClassVar[str] = "ai_rtp"


@dataclass(frozen=True, slots=True)
class HostLag:
    """The bridge's event-loop lag since the call began, cumulative per lag bucket."""

    counts: tuple[int, ...]
    DIR: ClassVar[str] = "host_lag"


Input: TypeAlias = (TwilioIn | AiIn | AiPacketIn | AiAudioIn | Timer | TwilioRtt | AiRtt | AiConnected | AiClosed
                    | TwilioClosed | End | AiRtp | HostLag)
AI_INPUTS = (AiIn, AiPacketIn, AiAudioIn)  # what a metrics-only replay skips
OUTPUT_DIRS = frozenset({"twilio_out", "ai_out"})  # what was sent: send times, not inputs


def apply(core: CallCore, inp: Input, now: float) -> None:
    """Give ``inp`` to ``core`` at ``now``: the one dispatch from inputs to the core's methods
    (but ``AiAudioIn``, which only old captures hold: ``bridge/replay/legacy.py``)."""
    # The two inputs of nearly every call to this, tested first: a class pattern costs more.
    if isinstance(inp, TwilioIn):
        core.receive_twilio(inp.text, now)
        return
    if isinstance(inp, AiIn):
        core.receive_realtime(inp.text, now)
        return
    match inp:
        case AiPacketIn(seq, opus):
            core.receive_ai_packet(seq, opus, now)
        case AiAudioIn():
            raise TypeError("ai_audio_in is an old capture's input: replay applies it (bridge/replay/legacy.py)")
        case Timer():
            core.handle_timer(now)
        case TwilioRtt(rtt_ms) | AiRtt(rtt_ms):
            core.record_rtt(inp.PEER, rtt_ms, now)
        case AiConnected():
            core.realtime_connected(now)
        case AiClosed(reason):
            core.realtime_closed(now, reason)
        case TwilioClosed():
            core.twilio_closed(now)
        case End(reason):
            core.end(now, reason)
        case AiRtp(rtp):
            core.record_rtp(rtp, now)
        case HostLag(counts):
            core.record_loop_lag(counts, now)


def capture_fields(inp: Input) -> dict[str, Any]:
    """The fields of an event line for ``inp`` (messages are written by ``message_line``)."""
    match inp:
        case AiPacketIn(seq, opus):
            return {"seq": seq, "b64": base64.b64encode(opus).decode("ascii")}
        case AiAudioIn(pcm):
            return {"b64": base64.b64encode(pcm).decode("ascii")}
        case TwilioRtt(rtt_ms) | AiRtt(rtt_ms):
            return {"rtt_ms": rtt_ms}
        case AiClosed(reason) | End(reason):
            return {"reason": reason}
        case AiRtp(rtp):
            return {"rtp": rtp}
        case HostLag(counts):
            return {"counts": list(counts)}
    return {}


def from_record(rec: Record) -> Input | None:
    """The input a capture line holds; None for a line of what was sent (``*_out``)."""
    d = rec.dir
    if d in OUTPUT_DIRS:
        return None
    simple: dict[str, Input] = {"timer": Timer(), "ai_connected": AiConnected(), "twilio_closed": TwilioClosed()}
    if d in simple:
        return simple[d]
    match d:
        case "twilio_in":
            return TwilioIn(rec.text or "")
        case "ai_in":
            return AiIn(rec.text or "")
        case "ai_packet_in":
            return AiPacketIn(rec.seq or 0, rec.audio or b"")
        case "ai_audio_in":
            return AiAudioIn(rec.audio or b"")
        case "twilio_rtt":
            return TwilioRtt(rec.rtt_ms or 0.0)
        case "ai_rtt":
            return AiRtt(rec.rtt_ms or 0.0)
        case "ai_closed":
            return AiClosed(rec.reason or "closed")
        case "end":
            return End(rec.reason or "end")
        case "ai_rtp":
            return AiRtp(dict(rec.rtp or {}))
        case "host_lag":
            return HostLag(rec.counts or ())
    raise ValueError(f"capture line {rec.line_no}: unknown dir {d!r}")
