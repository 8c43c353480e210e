"""The call MOS under ordinary conditions: the table of "MOS you can alert on", regenerated.

    .venv/bin/python benchmarks/mos_table.py [--seeds 5]

Each row is a 60 s Twilio-shaped capture from ``bridge/stand_ins/simulate.py`` (loss on the media clock,
exponential extra delay in TCP order, default settings), replayed through the call core. Next to
the report's MOS stands G.107 on the generator's ground truth (``truth_mos``) and the bounds the
tests hold (``tests/bridge/core/test_mos_table.py``).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.protocols.capture import parse_capture
from bridge.replay.run import replay
from bridge.stand_ins.simulate import SimParams, simulate, truth_mos
from quality.impairments import CodecChain
from tests.bridge.core.test_mos_table import BASE_DELAY_MS, GILBERT, ROWS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    seeds = range(1, ap.parse_args().seeds + 1)
    rows: dict[str, tuple[dict[str, Any], float, float]] = dict(ROWS)
    rows["Gilbert ~5 %, BurstR ~3.5"] = ({"gilbert": GILBERT}, 0.0, 5.0)
    print(f"| condition (caller leg) | report MOS, {len(seeds)} seeds | G.107 on ground truth | bounds "
          "| loss % | burst_r | jitter mean / max ms | buffer ms | late % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (kwargs, low, high) in rows.items():
        got, truth_m, loss, br, jit, jmax, buf, late = [], [], [], [], [], [], [], []
        for seed in seeds:
            sim = simulate(SimParams(seconds=60, **kwargs), random.Random(seed))
            rep = replay(parse_capture(sim.text().splitlines()), metrics_only=True).report.to_json()
            t, i = sim.truth, rep["inbound"]
            assert t.buffer_ms is not None and t.late_pct is not None
            mos = rep["mos"]
            assert mos is not None
            got.append(mos)
            truth_m.append(truth_mos(loss_pct=t.loss_pct, burst_r=t.burst_r, buffer_ms=t.buffer_ms,
                                     late_pct=t.late_pct, chain=CodecChain.of("g711-plc"),
                                     base_delay_ms=BASE_DELAY_MS))
            loss.append(i["loss_pct"])
            br.append(i["burst_r"])
            jit.append(i["jitter_ms"])
            jmax.append(i["jitter_max_ms"])
            buf.append(i["buffer_delay_ms"])
            late.append(i["late_pct"])

        def rng(v: list[float], f: str = ".2f") -> str:
            return f"{min(v):{f}}–{max(v):{f}}"

        bounds = "below random at the same loss" if high == 5.0 else f"{low:.2f}–{high:.2f}"
        print(f"| {name} | {rng(got)} | {rng(truth_m)} | {bounds} | {rng(loss)} | {rng(br)} "
              f"| {rng(jit, '.1f')} / {rng(jmax, '.1f')} | {rng(buf, '.0f')} | {rng(late)} |")


if __name__ == "__main__":
    main()
