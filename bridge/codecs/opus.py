"""Opus (RFC 6716) at 16 kHz mono through libopus, loaded lazily via opuslib.

opuslib raises a bare Exception at import when libopus is absent; `load_opuslib` turns that into
`LibopusMissing` with one actionable line, and nothing imports opuslib until an Opus transcoder is
built, so commands that do not need Opus work without libopus.
"""

from __future__ import annotations

import ctypes
from types import ModuleType
from typing import Final

import numpy as np

from bridge.codecs.errors import CorruptOpusPacket, LibopusMissing, UnsupportedFormat
from bridge.codecs.g711 import Int16Array

OPUS_RATE: Final = 16000
FRAME_SAMPLES_16K: Final = 320
MIN_BITRATE: Final = 6000
MAX_BITRATE: Final = 510000
MISSING_MESSAGE: Final = "libopus not found: install the Debian package libopus0 (scripts/bootstrap.sh does)"


def load_opuslib() -> ModuleType:
    """Import opuslib, or raise LibopusMissing with a single-line message."""
    try:
        import opuslib
        import opuslib.api.decoder
    except Exception as exc:
        raise LibopusMissing(MISSING_MESSAGE) from exc
    module: ModuleType = opuslib
    return module


class OpusEncoder:
    """20 ms VOIP-mode encoder; one packet per 320 samples (RFC 6716 §2.1.4 frame sizes)."""

    def __init__(self, bitrate: int) -> None:
        if not MIN_BITRATE <= bitrate <= MAX_BITRATE:
            raise UnsupportedFormat(f"Opus bitrate {bitrate} outside {MIN_BITRATE}..{MAX_BITRATE}")
        lib = load_opuslib()
        self._enc = lib.Encoder(OPUS_RATE, 1, lib.APPLICATION_VOIP)
        self._enc.bitrate = bitrate
        self.bitrate = bitrate
        self.lookahead_samples = int(self._enc.lookahead)

    @property
    def delay_ms(self) -> float:
        return 1000.0 * self.lookahead_samples / OPUS_RATE

    def encode(self, samples: Int16Array) -> bytes:
        return bytes(self._enc.encode(samples.astype("<i2").tobytes(), FRAME_SAMPLES_16K))


class OpusDecoder:
    """Decoder with packet-loss concealment (opus_decode with no data, RFC 6716 §4.4)."""

    def __init__(self, rate: int = OPUS_RATE) -> None:
        """``rate``: the output rate, 8000, 12000, 16000, 24000 or 48000 (any stream decodes at
        any of them, RFC 6716 §2)."""
        lib = load_opuslib()
        self._lib = lib
        self._dec = lib.Decoder(rate, 1)
        self.frame_samples = rate // 50
        self._max_samples = rate * 120 // 1000  # the longest Opus packet, 120 ms (RFC 6716 §2.1.4)

    def decode(self, packet: bytes) -> Int16Array:
        if not packet:
            raise CorruptOpusPacket("empty Opus packet (RFC 6716 §3.4 R1: at least one byte)")
        try:
            pcm = self._dec.decode(packet, self._max_samples)
        except self._lib.OpusError as exc:
            reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise CorruptOpusPacket(f"libopus rejected a {len(packet)}-byte packet: {reason}") from exc
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)

    def conceal(self) -> Int16Array:
        """20 ms of libopus packet-loss concealment."""
        pcm = self._lib.api.decoder.decode(
            self._dec.decoder_state, ctypes.c_char_p(None), 0, self.frame_samples, False, channels=1
        )
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)

    def recover(self, next_packet: bytes) -> Int16Array:
        """The 20 ms before ``next_packet`` were lost: rebuild them from the in-band FEC that
        ``next_packet`` carries (RFC 6716 §2.1.7), or conceal them when it carries none."""
        try:
            pcm = self._dec.decode(next_packet, self.frame_samples, decode_fec=True)
        except self._lib.OpusError:
            return self.conceal()  # the next packet is corrupt: its own decode will say so
        return np.frombuffer(pcm, dtype="<i2").astype(np.int16)
