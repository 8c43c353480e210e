"""The transcoder contract shared by every AI-side format.

Caller side is always G.711 mu-law, 8 kHz, 20 ms = 160-byte frames (Twilio Media Streams).
Everything is synchronous and sans-I/O: bytes in, bytes out, state carried between calls. A
`CodecError` leaves the transcoder usable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Delay:
    """Algorithmic delay one direction adds, split by cause, in milliseconds."""

    resample_ms: float
    codec_ms: float

    @property
    def total_ms(self) -> float:
        return self.resample_ms + self.codec_ms


class Transcoder(ABC):
    """Caller mu-law frames <-> AI-side payloads, with concealment and counters.

    Counters: `frames_to_ai`, `concealed_to_ai` (missing caller frames filled in),
    `frames_to_caller`, `concealed_to_caller` (missing AI payloads filled in),
    `errors` (CodecError raised).
    """

    fmt: str
    ai_rate: int
    delay_to_ai: Delay
    delay_to_caller: Delay

    def __init__(self) -> None:
        self.frames_to_ai = 0
        self.concealed_to_ai = 0
        self.frames_to_caller = 0
        self.concealed_to_caller = 0
        self.errors = 0

    @abstractmethod
    def to_ai(self, frame: bytes) -> list[bytes]:
        """One 160-byte caller mu-law frame in; AI-side payloads out. FrameSizeError otherwise."""

    @abstractmethod
    def conceal_to_ai(self) -> list[bytes]:
        """A caller frame is missing: send the AI a concealed 20 ms instead (counted)."""

    @abstractmethod
    def to_caller(self, payload: bytes) -> list[bytes]:
        """An AI payload of any size in; zero or more exact 160-byte mu-law frames out."""

    @abstractmethod
    def lost_from_ai(self, next_payload: bytes | None = None) -> list[bytes]:
        """An AI-side payload (20 ms) is missing or was corrupt: conceal it (counted).
        ``next_payload``: the payload that arrived after it, for codecs that can rebuild a lost
        packet from its successor (Opus in-band FEC); the others ignore it."""

    @abstractmethod
    def flush_to_caller(self) -> list[bytes]:
        """End of an AI response: pad the carried remainder to a whole frame and reset."""

    def take_to_caller(self) -> bytes:
        """The carried remainder (less than 20 ms of mu-law) as it is, cleared: Twilio plays media of
        any length, so the caller need not wait for the next payload to complete the frame."""
        return b""
