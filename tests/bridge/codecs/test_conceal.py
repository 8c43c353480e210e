"""Frame-repetition concealment (G.711 Appendix I §I.2.4 fade rate)."""

from __future__ import annotations

import numpy as np

from bridge.codecs.conceal import Concealer
from bridge.codecs.g711 import FRAME_SAMPLES


def test_the_repeated_frame_is_the_last_160_samples_whatever_the_chunking() -> None:
    audio = np.arange(1, 1001, dtype=np.int16)
    for sizes in ([1000], [7, 993], [150, 30, 820], [999, 1], [3] * 333 + [1]):
        c = Concealer()
        at = 0
        for n in sizes:
            c.good(audio[at : at + n])
            at += n
        c.good(audio[:0])  # empty audio changes nothing
        first = c.conceal()
        # the first 10 ms fades from 1.0 by 0.25 % per sample (20 % per 10 ms)
        gain = 1.0 - 0.2 / 80 * np.arange(FRAME_SAMPLES)
        assert np.array_equal(first, np.round(audio[-FRAME_SAMPLES:] * gain).astype(np.int16)), sizes


def test_short_good_audio_before_a_full_frame_keeps_leading_silence() -> None:
    c = Concealer()
    c.good(np.full(40, 1000, dtype=np.int16))
    out = c.conceal()
    assert not out[:120].any() and out[120:].min() > 0


def test_the_fade_reaches_silence_50_ms_into_a_loss_run_and_good_audio_resets_it() -> None:
    c = Concealer()
    c.good(np.full(FRAME_SAMPLES, 10000, dtype=np.int16))
    runs = [c.conceal() for _ in range(4)]
    assert runs[0][0] == 10000 and runs[1][0] == round(10000 * 0.6)
    assert runs[2][80:].max() == 0 and runs[3].max() == 0
    c.good(np.full(FRAME_SAMPLES, 10000, dtype=np.int16))
    assert c.conceal()[0] == 10000
