"""The call MOS under ordinary conditions, on generated Twilio-shaped captures (issue "MOS you can alert on").

Each row is a 60 s call at the default 80 ms base mouth-to-ear delay (60 ms PSTN assumption + 20 ms
packetization), exponential extra delay of the given mean in TCP order and/or random or Gilbert loss
on the media clock, every setting at its default. Two checks per row, both from outside the code
under test: the row's bounds (G.107 for the injected figures and the field's thresholds, as set in
the issue), and G.107 on the generator's own ground truth (``truth_mos``: loss pattern, BurstR and
the documented playout rule over the injected transits).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from bridge.protocols.capture import parse_capture
from bridge.replay.run import replay
from bridge.stand_ins.simulate import GroundTruth, SimParams, simulate, truth_mos
from quality.emodel import EModelParams, r_factor
from quality.impairments import CodecChain
from tests.reports import loose

BASE_DELAY_MS = 60.0 + 20.0
# Gilbert chain with mean loss p / (p + q) = 5 % and BurstR 1 / (p + q) = 3.5 (G.107 §7.5)
GILBERT = (0.05 / 3.5, 0.95 / 3.5)

ROWS: dict[str, tuple[dict[str, Any], float, float]] = {
    "clean": ({}, 4.30, 4.42),
    "jitter 5 ms": ({"jitter_ms": 5.0}, 4.22, 4.42),
    "jitter 15 ms": ({"jitter_ms": 15.0}, 4.12, 4.42),
    "jitter 30 ms": ({"jitter_ms": 30.0}, 3.75, 4.37),
    "jitter 60 ms": ({"jitter_ms": 60.0}, 2.60, 4.35),
    "random loss 1 %": ({"loss_pct": 1.0}, 4.12, 4.36),
    "random loss 3 %": ({"loss_pct": 3.0}, 3.92, 4.18),
    "random loss 5 %": ({"loss_pct": 5.0}, 3.62, 3.98),
    "random loss 10 %": ({"loss_pct": 10.0}, 3.02, 3.56),
}
SEEDS = (1, 2, 3)


def _call(seed: int, **kwargs: Any) -> tuple[dict[str, Any], GroundTruth]:
    sim = simulate(SimParams(seconds=60, **kwargs), random.Random(seed))
    return loose(replay(parse_capture(sim.text().splitlines()), metrics_only=True).report.to_json()), sim.truth


def _truth_mos(t: GroundTruth) -> float:
    assert t.buffer_ms is not None and t.late_pct is not None
    return truth_mos(loss_pct=t.loss_pct, burst_r=t.burst_r, buffer_ms=t.buffer_ms, late_pct=t.late_pct,
                     chain=CodecChain.of("g711-plc"), base_delay_ms=BASE_DELAY_MS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("row", list(ROWS))
def test_call_mos_lands_in_the_row(row: str, seed: int) -> None:
    kwargs, low, high = ROWS[row]
    report, truth = _call(seed, **kwargs)
    assert low <= report["mos"] <= high, (row, seed, report["mos"])
    assert report["mos"] == pytest.approx(_truth_mos(truth), abs=0.05)
    inbound = report["inbound"]
    assert inbound["loss_pct"] == pytest.approx(truth.loss_pct, abs=0.1)
    assert inbound["lost"] == truth.lost and inbound["chunk_gaps"] == 0
    if "jitter_ms" in kwargs:
        assert inbound["late_pct"] <= 1.5  # the 99th-percentile buffer: about 1 % late


@pytest.mark.parametrize("seed", SEEDS)
def test_heavy_jitter_reads_worse_than_ordinary_jitter(seed: int) -> None:
    heavy, _ = _call(seed, jitter_ms=60.0)
    ordinary, _ = _call(seed, jitter_ms=15.0)
    assert heavy["mos"] < ordinary["mos"]


@pytest.mark.parametrize("seed", SEEDS)
def test_bursty_loss_costs_more_than_the_same_loss_at_random(seed: int) -> None:
    report, truth = _call(seed, gilbert=GILBERT)
    inbound = report["inbound"]
    assert 3.0 <= truth.loss_pct <= 7.0 and inbound["loss_pct"] == pytest.approx(truth.loss_pct, abs=0.1)
    assert inbound["burst_r"] > 1.5 and inbound["burst_r"] == pytest.approx(truth.burst_r, rel=0.02)
    # the same call with its measured loss at random: T adds the buffer's one-frame floor, Bpl of G.711 PLC
    at_random = replace(EModelParams().with_delay(BASE_DELAY_MS + 20.0), bpl=25.1, ppl=inbound["loss_pct"], burst_r=1.0)
    assert report["mos"] < r_factor(at_random).mos
    assert report["mos"] == pytest.approx(_truth_mos(truth), abs=0.05)
