"""Offline runs of the bridge's chains over whole signals, with a given per-20-ms loss pattern.

Used by `mosbridge transcode`, the codec benchmark and the quality tests. Loss indexes count
20 ms frames (caller leg) or AI payloads (AI leg) from 0. With `conceal=False` a lost frame is
replaced by silence instead of the transcoder's concealment, the baseline concealment is judged by.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from bridge.codecs import make_transcoder
from bridge.codecs.base import Transcoder
from bridge.codecs.g711 import FRAME_SAMPLES, SILENCE_FRAME, Int16Array, ulaw_decode, ulaw_encode
from bridge.codecs.opus import FRAME_SAMPLES_16K, OpusDecoder, OpusEncoder


def caller_frames(samples: Int16Array) -> list[bytes]:
    """8 kHz linear audio to 160-byte mu-law frames, the last zero-padded."""
    padded = np.zeros(-(-samples.size // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=np.int16)
    padded[: samples.size] = samples
    data = ulaw_encode(padded)
    return [data[i : i + FRAME_SAMPLES] for i in range(0, len(data), FRAME_SAMPLES)]


def frames_to_linear(frames: list[bytes]) -> Int16Array:
    return ulaw_decode(b"".join(frames))


def _caller_leg(tc: Transcoder, frames: list[bytes], lost: Collection[int], conceal: bool) -> list[bytes]:
    payloads: list[bytes] = []
    for i, frame in enumerate(frames):
        if i not in lost:
            payloads += tc.to_ai(frame)
        elif conceal:
            payloads += tc.conceal_to_ai()
        else:
            payloads += tc.to_ai(SILENCE_FRAME)
    return payloads


def _ai_leg(tc: Transcoder, payloads: list[bytes], lost: Collection[int], conceal: bool) -> list[bytes]:
    out: list[bytes] = []
    for i, payload in enumerate(payloads):
        if i not in lost:
            out += tc.to_caller(payload)
        elif conceal:
            out += tc.lost_from_ai()
        else:
            out.append(SILENCE_FRAME)
    return out + tc.flush_to_caller()


def loopback(
    tc: Transcoder,
    samples: Int16Array,
    caller_lost: Collection[int] = (),
    ai_lost: Collection[int] = (),
    conceal: bool = True,
) -> Int16Array:
    """Caller audio -> to_ai -> AI payloads -> to_caller -> caller audio, both bridge directions."""
    payloads = _caller_leg(tc, caller_frames(samples), caller_lost, conceal)
    return frames_to_linear(_ai_leg(tc, payloads, ai_lost, conceal))


def to_ai(
    fmt: str, samples: Int16Array, bitrate: int = 24000, lost: Collection[int] = (), conceal: bool = True
) -> Int16Array:
    """Caller audio at 8 kHz -> what the AI side decodes, at the AI rate (caller-leg loss)."""
    tc = make_transcoder(fmt, bitrate)
    payloads = _caller_leg(tc, caller_frames(samples), lost, conceal)
    if fmt == "pcmu":
        return ulaw_decode(b"".join(payloads))
    if fmt == "pcm24k":
        return np.frombuffer(b"".join(payloads), dtype="<i2").astype(np.int16)
    dec = OpusDecoder()
    return np.concatenate([dec.decode(p) for p in payloads])


def ai_payloads(fmt: str, samples: Int16Array, bitrate: int = 24000) -> list[bytes]:
    """AI-side audio at the AI rate, cut into the 20 ms payloads the AI would send."""
    step = {"pcmu": 160, "pcm24k": 480, "opus16k": FRAME_SAMPLES_16K}[fmt]
    padded = np.zeros(-(-samples.size // step) * step, dtype=np.int16)
    padded[: samples.size] = samples
    chunks = [padded[i : i + step] for i in range(0, padded.size, step)]
    if fmt == "pcmu":
        return [ulaw_encode(c) for c in chunks]
    if fmt == "pcm24k":
        return [c.astype("<i2").tobytes() for c in chunks]
    enc = OpusEncoder(bitrate)
    return [enc.encode(c) for c in chunks]


def to_caller(
    fmt: str, samples: Int16Array, bitrate: int = 24000, lost: Collection[int] = (), conceal: bool = True
) -> Int16Array:
    """AI-side audio at the AI rate -> the 8 kHz audio the caller hears (AI-leg loss)."""
    tc = make_transcoder(fmt, bitrate)
    return frames_to_linear(_ai_leg(tc, ai_payloads(fmt, samples, bitrate), lost, conceal))
