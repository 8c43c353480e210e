"""AI side = G.711 mu-law 8 kHz (`audio/pcmu`): payloads pass through untouched."""

from __future__ import annotations

from bridge.codecs.base import Delay, Transcoder
from bridge.codecs.conceal import Concealer
from bridge.codecs.errors import FrameSizeError
from bridge.codecs.framing import UlawFramer
from bridge.codecs.g711 import FRAME_BYTES, ulaw_decode, ulaw_encode


class PcmuTranscoder(Transcoder):
    """Zero transcoding; only concealment decodes the last good 20 ms (lazily)."""

    fmt = "pcmu"
    ai_rate = 8000
    delay_to_ai = Delay(resample_ms=0.0, codec_ms=0.0)
    delay_to_caller = Delay(resample_ms=0.0, codec_ms=0.0)

    def __init__(self) -> None:
        super().__init__()
        self._framer = UlawFramer()
        self._conceal_in = Concealer()
        self._conceal_out = Concealer()
        self._last_in: bytes | None = None
        self._last_out = b""

    def to_ai(self, frame: bytes) -> list[bytes]:
        if len(frame) != FRAME_BYTES:
            self.errors += 1
            raise FrameSizeError(f"caller mu-law frame is {len(frame)} bytes, expected {FRAME_BYTES}")
        self._last_in = frame
        self.frames_to_ai += 1
        return [frame]

    def conceal_to_ai(self) -> list[bytes]:
        if self._last_in is not None:
            self._conceal_in.good(ulaw_decode(self._last_in))
            self._last_in = None
        self.concealed_to_ai += 1
        return [ulaw_encode(self._conceal_in.conceal())]

    def to_caller(self, payload: bytes) -> list[bytes]:
        self._last_out = (self._last_out + payload)[-FRAME_BYTES:]
        frames = self._framer.push(payload)
        self.frames_to_caller += len(frames)
        return frames

    def lost_from_ai(self, next_payload: bytes | None = None) -> list[bytes]:
        if self._last_out:
            self._conceal_out.good(ulaw_decode(self._last_out))
            self._last_out = b""
        self.concealed_to_caller += 1
        frames = self._framer.push(ulaw_encode(self._conceal_out.conceal()))
        self.frames_to_caller += len(frames)
        return frames

    def take_to_caller(self) -> bytes:
        return self._framer.take()

    def flush_to_caller(self) -> list[bytes]:
        frames = self._framer.flush()
        self.frames_to_caller += len(frames)
        self._last_out = b""
        self._conceal_out = Concealer()
        return frames
