"""G.711 mu-law (ITU-T G.711 §3, Table 2a) and A-law (§2, Table 1a) via `audioop`: the one place
the project encodes or decodes G.711.

`audioop` is stdlib up to Python 3.12; from 3.13 the `audioop-lts` distribution provides the same
module. Linear samples are 16-bit: audioop scales the 14-bit G.711 range by 4, so decoded values
lie in [-32124, 32124].
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import numpy.typing as npt

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

FRAME_SAMPLES = 160
FRAME_BYTES = 160
SILENCE_BYTE = 0xFF
SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES
_NATIVE_LE = sys.byteorder == "little"

Int16Array = npt.NDArray[np.int16]


def ulaw_decode(data: bytes) -> Int16Array:
    """mu-law bytes to 16-bit linear samples."""
    return _from_native(audioop.ulaw2lin(data, 2))


def ulaw_encode(samples: Int16Array) -> bytes:
    """16-bit linear samples to mu-law bytes (G.711 §3 segment encoding)."""
    return bytes(audioop.lin2ulaw(_to_native(samples), 2))


def alaw_decode(data: bytes) -> Int16Array:
    """A-law bytes to 16-bit linear samples (the Realtime stand-in's ``audio/pcma``)."""
    return _from_native(audioop.alaw2lin(data, 2))


def alaw_encode(samples: Int16Array) -> bytes:
    """16-bit linear samples to A-law bytes (G.711 §2)."""
    return bytes(audioop.lin2alaw(_to_native(samples), 2))


QUIET_PEAK = 32  # -60 dBov: a decoder's output for encoded digital silence stays below it


def is_quiet(frame: bytes) -> bool:
    """No sample of this mu-law frame above -60 dBov: silence, give or take a codec's dither."""
    return audioop.max(audioop.ulaw2lin(frame, 2), 2) <= QUIET_PEAK


def _from_native(raw: bytes) -> Int16Array:
    return np.frombuffer(raw, dtype=np.int16 if _NATIVE_LE else ">i2").astype(np.int16)


def _to_native(samples: Int16Array) -> bytes:
    arr = np.asarray(samples, dtype=np.int16)
    return arr.tobytes() if _NATIVE_LE else arr.astype(">i2").tobytes()
