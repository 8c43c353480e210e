"""Streaming integer-ratio resamplers between 8 kHz and 16/24 kHz (numpy only).

One linear-phase low-pass per ratio L, designed at import time as a Kaiser-windowed sinc
(Oppenheim & Schafer, Discrete-Time Signal Processing, §7.5.3): cutoff 3.9 kHz, beta 5.0,
N = 20·L + 1 taps at the high rate. That gives a passband within 0.3 dB up to 3.4 kHz,
about -9 dB at 4 kHz and >= 55 dB stopband from 4.6 kHz, so AI speech above 4 kHz does not fold
into the call. The group delay is (N-1)/2 = 10·L high-rate samples = 10 samples at 8 kHz = 1.25 ms
per direction.

Trade-off: a linear-phase FIR is chosen over a minimum-phase one so the delay is exact and
frequency-independent; halving the delay would widen the transition band (more aliasing between
4 and 5 kHz) or need a minimum-phase design with dispersive delay. soxr is not used: its streaming
high-quality mode holds back 40-85 ms.

Coefficients are quantised to Q20 integers. Products of 16-bit samples and Q20 taps summed over
at most 61 taps stay below 2^42, so float64 (BLAS) arithmetic on them is exact in any summation
order: output is bit-exact whatever the chunking of the input stream.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from bridge.codecs.g711 import Int16Array

NARROW_RATE: Final = 8000
CUTOFF_HZ: Final = 3900.0
KAISER_BETA: Final = 5.0
HALF_TAPS_AT_8K: Final = 10
_Q: Final = 20

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


def design_lowpass(factor: int) -> npt.NDArray[np.float64]:
    """Unit-DC-gain Kaiser-windowed-sinc low-pass at NARROW_RATE·factor, 20·factor + 1 taps."""
    taps = 2 * HALF_TAPS_AT_8K * factor + 1
    rate = NARROW_RATE * factor
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * CUTOFF_HZ / rate * n) * np.kaiser(taps, KAISER_BETA)
    return np.asarray(h / h.sum(), dtype=np.float64)


RESAMPLE_DELAY_MS: Final = 1000.0 * HALF_TAPS_AT_8K / NARROW_RATE


def _quantise(h: Float64Array) -> Float64Array:
    return np.asarray(np.round(h * (1 << _Q)), dtype=np.float64)


def _to_int16(acc: Float64Array) -> Int16Array:
    """Q20 accumulators to int16, rounding half up and saturating; ``acc`` is overwritten."""
    acc *= 1.0 / (1 << _Q)
    acc += 0.5
    np.floor(acc, out=acc)
    np.minimum(acc, 32767.0, out=acc)
    np.maximum(acc, -32768.0, out=acc)
    return acc.astype(np.int16)


def _windows(buf: Float64Array, count: int, width: int, step: int) -> Float64Array:
    """``count`` overlapping windows ``buf[k·step : k·step + width]`` as a view (no copy)."""
    item = buf.itemsize
    return np.ndarray((count, width), np.float64, buf, 0, (step * item, item))


class Upsampler:
    """8 kHz -> 8·factor kHz interpolator (zero-stuff + low-pass, polyphase).

    All phases in one product: the window of input history behind each input sample times a
    (taps-per-phase × factor) matrix gives that sample's factor outputs."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        h = _quantise(design_lowpass(factor) * factor)
        per_phase = -(-h.size // factor)
        padded = np.zeros(per_phase * factor, dtype=np.float64)
        padded[: h.size] = h
        # column p holds phase p's taps time-reversed, so a window's dot product is the convolution
        self._matrix: Float64Array = np.ascontiguousarray(
            np.stack([padded[p::factor][::-1] for p in range(factor)], axis=1))
        self._width = per_phase
        self._history: Float64Array = np.zeros(per_phase - 1, dtype=np.float64)

    def process(self, samples: Int16Array) -> Int16Array:
        """Exactly factor output samples per input sample."""
        if samples.size == 0:
            return np.zeros(0, dtype=np.int16)
        buf = np.concatenate((self._history, samples.astype(np.float64)))
        out = _windows(buf, samples.size, self._width, 1) @ self._matrix
        self._history = buf[buf.size - self._history.size :]
        return _to_int16(out.reshape(-1))

    def reset(self) -> None:
        self._history[:] = 0


class Downsampler:
    """8·factor kHz -> 8 kHz decimator (low-pass, keep every factor-th sample).

    Only the kept outputs are computed: one window every factor input samples, times the taps."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self._taps: Float64Array = _quantise(design_lowpass(factor))[::-1].copy()
        self._buf: Float64Array = np.zeros(self._taps.size - 1, dtype=np.float64)

    def process(self, samples: Int16Array) -> Int16Array:
        """floor-divided output count; the input phase is carried to the next call."""
        buf = np.concatenate((self._buf, samples.astype(np.float64)))
        n = self._taps.size
        if buf.size < n:
            self._buf = buf
            return np.zeros(0, dtype=np.int16)
        count = (buf.size - n) // self.factor + 1
        out = _windows(buf, count, n, self.factor) @ self._taps
        self._buf = buf[count * self.factor :]
        return _to_int16(out)

    def reset(self) -> None:
        self._buf = np.zeros(self._taps.size - 1, dtype=np.float64)
