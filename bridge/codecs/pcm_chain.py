"""Shared chain for AI formats that are linear PCM at 8·factor kHz on the AI side.

to_ai:     mu-law 160 B -> linear 8 kHz -> Upsampler -> `_encode_ai`
to_caller: `_decode_to_caller` (decode, then Downsampler or the codec's own 8 kHz output) -> mu-law
           -> UlawFramer -> 160 B frames
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from bridge.codecs.base import Transcoder
from bridge.codecs.conceal import Concealer
from bridge.codecs.errors import CodecError, FrameSizeError
from bridge.codecs.framing import UlawFramer
from bridge.codecs.g711 import FRAME_BYTES, Int16Array, ulaw_decode, ulaw_encode
from bridge.codecs.resamplers import Downsampler, Upsampler


class ResamplingTranscoder(Transcoder):
    """Transcoder base for pcm24k and opus16k; subclasses supply the AI-side codec."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self._up = Upsampler(factor)
        self._down = Downsampler(factor)
        self._framer = UlawFramer()
        self._conceal_in = Concealer()
        self._conceal_out = Concealer()

    @abstractmethod
    def _encode_ai(self, samples: Int16Array) -> list[bytes]:
        """20 ms of linear audio at the AI rate to AI-side payloads."""

    @abstractmethod
    def _decode_to_caller(self, payload: bytes) -> Int16Array:
        """One AI-side payload to linear audio at 8 kHz; raises CodecError on bad input."""

    def _reset_caller_side(self) -> None:
        self._down.reset()
        self._conceal_out = Concealer()

    def to_ai(self, frame: bytes) -> list[bytes]:
        if len(frame) != FRAME_BYTES:
            self.errors += 1
            raise FrameSizeError(f"caller mu-law frame is {len(frame)} bytes, expected {FRAME_BYTES}")
        samples = ulaw_decode(frame)
        self._conceal_in.good(samples)
        self.frames_to_ai += 1
        return self._encode_ai(self._up.process(samples))

    def conceal_to_ai(self) -> list[bytes]:
        self.concealed_to_ai += 1
        return self._encode_ai(self._up.process(self._conceal_in.conceal()))

    def to_caller(self, payload: bytes) -> list[bytes]:
        try:
            narrow = self._decode_to_caller(payload)
        except CodecError:
            self.errors += 1
            raise
        return self._emit(narrow, concealed=False)

    def lost_from_ai(self, next_payload: bytes | None = None) -> list[bytes]:
        self.concealed_to_caller += 1
        return self._emit(self._conceal_out.conceal(), concealed=True)

    def take_to_caller(self) -> bytes:
        return self._framer.take()

    def flush_to_caller(self) -> list[bytes]:
        short = (-self._framer.pending) % FRAME_BYTES
        out: list[bytes] = []
        if short:
            zeros = np.zeros(short * self._down.factor, dtype=np.int16)
            out = self._emit(self._down.process(zeros)[:short], concealed=False)
        self._reset_caller_side()
        return out

    def _emit(self, samples: Int16Array, concealed: bool) -> list[bytes]:
        if not concealed:
            self._conceal_out.good(samples)
        frames = self._framer.push(ulaw_encode(samples))
        self.frames_to_caller += len(frames)
        return frames
