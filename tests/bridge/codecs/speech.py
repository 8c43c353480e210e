"""Test speech made offline with espeak-ng and band-limited to the wanted rate by FFT truncation."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def fft_resample(x: npt.NDArray[np.float64], n_out: int) -> npt.NDArray[np.float64]:
    """Ideal (brick-wall, circular) band-limited resampling to n_out samples."""
    spec = np.fft.rfft(x)
    out = np.zeros(n_out // 2 + 1, dtype=complex)
    m = min(spec.size, out.size)
    out[:m] = spec[:m]
    return np.asarray(np.fft.irfft(out, n_out) * n_out / x.size, dtype=np.float64)


def speech(text: str, rate: int, peak: float = 0.5) -> npt.NDArray[np.int16]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            src_rate = w.getframerate()
            raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    y = fft_resample(raw, round(raw.size * rate / src_rate))
    y *= peak * 32767 / np.max(np.abs(y))
    return np.round(y).astype(np.int16)
