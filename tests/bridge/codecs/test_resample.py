"""Anti-alias, passband, image rejection, measured delay and chunking-exactness of the resamplers."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codecs.resamplers import RESAMPLE_DELAY_MS, Downsampler, Upsampler
from tests.bridge.codecs.speech import fft_resample

SETTLE = 200


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 10000.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x[SETTLE:].astype(np.float64) ** 2)))


def gain_db(out: npt.NDArray[np.int16], inp: npt.NDArray[np.int16]) -> float:
    return float(20 * np.log10(max(rms(out), 1e-9) / rms(inp)))


@pytest.mark.parametrize("factor", [2, 3])
def test_6khz_tone_is_attenuated_40db_before_folding(factor: int) -> None:
    x = tone(6000, 8000 * factor)
    assert gain_db(Downsampler(factor).process(x), x) <= -40


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("freq", [300, 500, 1000, 2000, 3000, 3400])
def test_downsampler_passband_flat_within_1db(factor: int, freq: int) -> None:
    x = tone(freq, 8000 * factor)
    assert abs(gain_db(Downsampler(factor).process(x), x)) <= 1.0


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("freq", [300, 1000, 3400])
def test_upsampler_passband_flat_and_images_rejected(factor: int, freq: int) -> None:
    x = tone(freq, 8000)
    y = Upsampler(factor).process(x)
    assert abs(gain_db(y, x)) <= 1.0
    spec = np.abs(np.fft.rfft(y[SETTLE * factor :].astype(np.float64) * np.hanning(y.size - SETTLE * factor)))
    freqs = np.fft.rfftfreq(y.size - SETTLE * factor, 1 / (8000 * factor))
    image = spec[np.abs(freqs - (8000 - freq)) < 50].max()
    assert 20 * np.log10(image / spec.max()) <= -40


def bandlimited_noise(n: int, seed: int = 7) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[np.fft.rfftfreq(n, 1 / 8000) > 3400] = 0
    x = np.fft.irfft(spec, n)
    return np.asarray(x * 8000 / np.abs(x).max(), dtype=np.float64)


def measured_delay_ms(out: npt.NDArray[np.float64], ref: npt.NDArray[np.float64], rate: int) -> float:
    corr = np.correlate(out, ref, "full")
    k = int(np.argmax(corr))
    y0, y1, y2 = corr[k - 1], corr[k], corr[k + 1]
    frac = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    return float(1000.0 * (k - (ref.size - 1) + frac) / rate)


@pytest.mark.parametrize("factor", [2, 3])
def test_downsampler_measured_delay_matches_reported(factor: int) -> None:
    ref = bandlimited_noise(4000)
    wide = np.round(fft_resample(ref, ref.size * factor)).astype(np.int16)
    out = Downsampler(factor).process(wide).astype(np.float64)
    delay = measured_delay_ms(out, ref, 8000)
    assert delay <= 2.0
    assert abs(delay - RESAMPLE_DELAY_MS) <= 0.25


@pytest.mark.parametrize("factor", [2, 3])
def test_upsampler_measured_delay_matches_reported(factor: int) -> None:
    ref = bandlimited_noise(4000)
    out = Upsampler(factor).process(np.round(ref).astype(np.int16)).astype(np.float64)
    delay = measured_delay_ms(out, fft_resample(ref, ref.size * factor), 8000 * factor)
    assert delay <= 2.0
    assert abs(delay - RESAMPLE_DELAY_MS) <= 0.25


SIGNAL = np.random.default_rng(3).integers(-32768, 32768, 1500).astype(np.int16)


def split(signal: npt.NDArray[np.int16], cuts: list[int]) -> list[npt.NDArray[np.int16]]:
    points = sorted({c % (signal.size + 1) for c in cuts})
    return np.split(signal, points)


@settings(max_examples=60, deadline=None)
@given(factor=st.sampled_from([2, 3]), cuts=st.lists(st.integers(0, 1500), max_size=40))
def test_downsampler_streaming_equals_one_shot(factor: int, cuts: list[int]) -> None:
    whole = Downsampler(factor).process(SIGNAL)
    ds = Downsampler(factor)
    pieces = np.concatenate([ds.process(c) for c in split(SIGNAL, cuts)])
    assert np.array_equal(pieces, whole)
    assert whole.size == SIGNAL.size // factor + (1 if SIGNAL.size % factor else 0)


@settings(max_examples=60, deadline=None)
@given(factor=st.sampled_from([2, 3]), cuts=st.lists(st.integers(0, 1500), max_size=40))
def test_upsampler_streaming_equals_one_shot(factor: int, cuts: list[int]) -> None:
    whole = Upsampler(factor).process(SIGNAL)
    us = Upsampler(factor)
    pieces = np.concatenate([us.process(c) for c in split(SIGNAL, cuts)])
    assert np.array_equal(pieces, whole)
    assert whole.size == SIGNAL.size * factor


def test_full_scale_input_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 8 + [-32768] * 8, dtype=np.int16), 50)
    out = Downsampler(2).process(square).astype(np.int64)
    delayed_input = square[np.arange(10, out.size) * 2 - 20].astype(np.int64)
    plateau = np.isin(np.arange(10, out.size) * 2 % 8, [2, 4])
    assert np.all(np.sign(out[10:][plateau]) == np.sign(delayed_input[plateau]))
    assert out.max() == 32767
