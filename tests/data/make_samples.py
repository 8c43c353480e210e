"""Regenerate the simulated sample captures in this directory (deterministic: fixed seeds).

    .venv/bin/python tests/data/make_samples.py [OUT_DIR]

Each ``NAME.jsonl`` gets a ``NAME.truth.json`` with the generator's ground truth; see
``bridge/stand_ins/simulate.py`` for the model. ``tests/bridge/stand_ins/test_simulate.py`` checks that the shipped
files are byte for byte what this script writes, so rerun it after changing the generator or
the capture header (``CallConfig`` defaults).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

from bridge.stand_ins.simulate import SimParams, simulate, truth_document

HERE = Path(__file__).resolve().parent
BRIDGE_VERSION = "0.1.0+simulate"  # pinned so a version bump does not change the samples


@dataclass(frozen=True)
class Sample:
    params: SimParams
    seed: int
    plain: bool = False


# 6 s = 300 frames keeps each capture under 150 KB (about 420 bytes a media line).
SAMPLES: dict[str, Sample] = {
    "clean": Sample(SimParams(seconds=6, delay_ms=40, speech=True), seed=1),
    "random_loss_2pct": Sample(SimParams(seconds=6, delay_ms=40, loss_pct=2, speech=True), seed=4),
    "bursty_loss_jitter": Sample(
        SimParams(seconds=6, delay_ms=40, gilbert=(0.01, 0.3), jitter_ms=4, jitter_dist="pareto", pareto_alpha=2.5,
                  speech=True), seed=3),
    "reorder_dup_stall": Sample(
        SimParams(seconds=6, delay_ms=40, jitter_ms=2, reorder_pct=3, duplicate_pct=2, stall_at_s=3.0,
                  stall_ms=400), seed=4),
    "plain_twilio_log": Sample(SimParams(seconds=3, drop=frozenset({20, 21, 22, 75, 140})), seed=5, plain=True),
}


def generate(directory: Path) -> list[Path]:
    """Write every sample and its truth into ``directory``; return the paths written."""
    written: list[Path] = []
    for name, s in SAMPLES.items():
        sim = simulate(s.params, random.Random(s.seed), plain=s.plain, bridge_version=BRIDGE_VERSION)
        capture, truth = directory / f"{name}.jsonl", directory / f"{name}.truth.json"
        capture.write_text(sim.text(), encoding="utf-8")
        truth.write_text(truth_document(s.params, s.seed, sim.truth), encoding="utf-8")
        written += [capture, truth]
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for path in generate(out):
        print(f"{path}  {path.stat().st_size} bytes")
