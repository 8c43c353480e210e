"""Frame-repetition concealment for a missing 20 ms frame in the linear domain.

The last good frame is repeated under a linear fade of 20 % per 10 ms, the attenuation rate of
ITU-T G.711 Appendix I §I.2.4, reaching silence 50 ms into a loss run. Unlike Appendix I it does
not search a pitch period: a plain repeat costs almost nothing and still beats zero fill (the
quality benchmark measures both).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from bridge.codecs.g711 import FRAME_SAMPLES, Int16Array

FADE_PER_SAMPLE: Final = 0.2 / 80


class Concealer:
    """Holds the last good frame and the length of the current loss run."""

    def __init__(self) -> None:
        self._last: Int16Array = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._run = 0

    def good(self, samples: Int16Array) -> None:
        """Record good audio of any length; the last 160 samples are what a loss repeats."""
        if samples.size >= FRAME_SAMPLES:
            self._last = samples[-FRAME_SAMPLES:].copy()
        elif samples.size:
            self._last = np.concatenate((self._last[samples.size :], samples))
        else:
            return
        self._run = 0

    def conceal(self) -> Int16Array:
        """The next concealed 160-sample frame of the current loss run."""
        start = self._run * FRAME_SAMPLES
        gain = 1.0 - FADE_PER_SAMPLE * (start + np.arange(FRAME_SAMPLES))
        self._run += 1
        out: Int16Array = np.round(self._last * np.clip(gain, 0.0, 1.0)).astype(np.int16)
        return out
