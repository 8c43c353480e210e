"""Streaming transcoders between Twilio's G.711 mu-law frames and OpenAI Realtime audio formats."""

from __future__ import annotations

from typing import Final

from bridge.codecs.base import Delay, Transcoder
from bridge.codecs.errors import (
    CodecError,
    CorruptOpusPacket,
    FrameSizeError,
    LibopusMissing,
    OddPcmLength,
    UnsupportedFormat,
)

FORMATS: Final = ("opus16k", "pcm24k", "pcmu")
OPUS_BITRATES: Final = (16000, 24000, 32000)


def make_transcoder(fmt: str, bitrate: int = 24000) -> Transcoder:
    """A fresh transcoder for one call; `bitrate` applies to opus16k only."""
    if fmt == "pcmu":
        from bridge.codecs.pcmu import PcmuTranscoder

        return PcmuTranscoder()
    if fmt == "pcm24k":
        from bridge.codecs.pcm24k import Pcm24kTranscoder

        return Pcm24kTranscoder()
    if fmt == "opus16k":
        from bridge.codecs.opus16k import Opus16kTranscoder

        return Opus16kTranscoder(bitrate)
    raise UnsupportedFormat(f"unknown AI audio format {fmt!r}; expected one of {', '.join(FORMATS)}")


__all__ = [
    "FORMATS",
    "OPUS_BITRATES",
    "CodecError",
    "CorruptOpusPacket",
    "Delay",
    "FrameSizeError",
    "LibopusMissing",
    "OddPcmLength",
    "Transcoder",
    "UnsupportedFormat",
    "make_transcoder",
]
