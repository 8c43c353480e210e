"""AI side = PCM16 little-endian mono 24 kHz, OpenAI Realtime's `audio/pcm` WebSocket format."""

from __future__ import annotations

import numpy as np

from bridge.codecs.base import Delay
from bridge.codecs.errors import OddPcmLength
from bridge.codecs.g711 import Int16Array
from bridge.codecs.pcm_chain import ResamplingTranscoder
from bridge.codecs.resamplers import RESAMPLE_DELAY_MS


class Pcm24kTranscoder(ResamplingTranscoder):
    """Deltas may split a sample across payloads: the odd byte is carried to the next payload.

    A dangling byte at `flush_to_caller` raises OddPcmLength after discarding that byte; calling
    `flush_to_caller` again then pads and returns the remainder.
    """

    fmt = "pcm24k"
    ai_rate = 24000
    delay_to_ai = Delay(resample_ms=RESAMPLE_DELAY_MS, codec_ms=0.0)
    delay_to_caller = Delay(resample_ms=RESAMPLE_DELAY_MS, codec_ms=0.0)

    def __init__(self) -> None:
        super().__init__(factor=3)
        self._carry = b""

    def _encode_ai(self, samples: Int16Array) -> list[bytes]:
        return [samples.astype("<i2").tobytes()]

    def _decode_to_caller(self, payload: bytes) -> Int16Array:
        data = self._carry + payload
        whole = len(data) & ~1
        self._carry = data[whole:]
        return self._down.process(np.frombuffer(data[:whole], dtype="<i2").astype(np.int16))

    def flush_to_caller(self) -> list[bytes]:
        if self._carry:
            self._carry = b""
            self.errors += 1
            raise OddPcmLength("AI PCM16 stream ended on half a sample; the odd byte was dropped")
        return super().flush_to_caller()
