"""Typed codec errors: the call core catches `CodecError`, logs it and keeps the call up."""

from __future__ import annotations


class CodecError(Exception):
    """Base of every error a transcoder raises on bad input; the transcoder stays usable."""


class FrameSizeError(CodecError):
    """A caller mu-law frame that is not exactly 160 bytes (20 ms at 8 kHz, G.711)."""


class OddPcmLength(CodecError):
    """PCM16 input that ends on half a sample (an odd total byte count at a flush)."""


class CorruptOpusPacket(CodecError):
    """An Opus packet libopus rejects (RFC 6716 §3.4 malformed-packet rules)."""


class UnsupportedFormat(CodecError):
    """An unknown AI-side format name or an out-of-range Opus bitrate."""


class LibopusMissing(CodecError):
    """The shared library libopus could not be loaded by opuslib."""
