"""PESQ (ITU-T P.862, narrowband MOS-LQO) orderings of the bridge chains on espeak-ng speech."""

from __future__ import annotations

import random
from functools import cache

import numpy as np
import numpy.typing as npt
import pytest

from bridge.codecs import make_transcoder
from bridge.codecs.offline import loopback
from tests.bridge.codecs.speech import espeak_available, speech

pesq_module = pytest.importorskip("pesq", reason="the pesq package (ITU-T P.862) is not installed")
pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."


@cache
def reference() -> npt.NDArray[np.int16]:
    return speech(TEXT, 8000)


def mos(fmt: str, bitrate: int = 24000, loss_pct: float = 0.0, conceal: bool = True) -> float:
    x = reference()
    rng = random.Random(11)
    lost = {i for i in range(x.size // 160 + 1) if rng.random() * 100 < loss_pct}
    y = loopback(make_transcoder(fmt, bitrate), x, caller_lost=lost, ai_lost=lost, conceal=conceal)
    return float(pesq_module.pesq(8000, x.astype(np.float64), y[: x.size].astype(np.float64), "nb"))


@pytest.mark.parametrize(("fmt", "bitrate"), [("pcm24k", 24000), ("opus16k", 16000), ("opus16k", 32000)])
def test_pcmu_pass_through_beats_every_transcoded_chain(fmt: str, bitrate: int) -> None:
    assert mos("pcmu") >= mos(fmt, bitrate)


def test_opus_32k_not_worse_than_16k() -> None:
    assert mos("opus16k", 32000) >= mos("opus16k", 16000) - 0.1


@pytest.mark.parametrize("fmt", ["pcmu", "pcm24k", "opus16k"])
def test_concealment_beats_zero_fill_at_5pct_loss(fmt: str) -> None:
    assert mos(fmt, loss_pct=5) > mos(fmt, loss_pct=5, conceal=False)


def test_clean_pcmu_scores_like_g711() -> None:
    assert 3.8 <= mos("pcmu") <= 4.6
