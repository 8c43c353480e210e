"""Cost of the quality meters per frame and of one report, as ratios to a same-run baseline.

Baseline: ``json.loads`` of one Twilio ``media`` message, work the bridge must do for every
frame anyway. Run: ``.venv/bin/python benchmarks/bench_quality.py [--frames N]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable

from quality.impairments import CodecChain
from quality.meter import DirectionMeter
from quality.playout import QuantilePlayout
from quality.report import CallReport, DirectionReport, assess, direction_input

MEDIA = json.dumps({
    "event": "media", "sequenceNumber": "4", "streamSid": "MZ" + "0" * 32,
    "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": "/" * 216},
})


def per_call_us(fn: Callable[[], None], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=50_000)
    n = ap.parse_args().frames
    rng = random.Random(1)
    # Twilio's shape: 1 % lost before Twilio shows as a timestamp step, the chunk never skips
    sent = [i for i in range(1, n + 1) if rng.random() > 0.01]
    arrivals = [(chunk, i * 0.020, i * 0.020 + rng.expovariate(1 / 0.010)) for chunk, i in enumerate(sent, start=1)]

    baseline = per_call_us(lambda: json.loads(MEDIA), n)

    def run_meter() -> DirectionMeter:
        m = DirectionMeter(QuantilePlayout())
        for seq, ts, arr in arrivals:
            m.update(seq, ts, arr)
        return m

    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        meter = run_meter()
        best = min(best, time.perf_counter() - t0)
    meter_us = best / len(arrivals) * 1e6

    chain = CodecChain.of("g711")

    def report() -> None:
        f = meter.figures()
        d = DirectionReport("outbound", f, 120.0, chain.name, assess(direction_input(f, 120.0, chain)))
        CallReport("CA", "t", d, d, duration_s=n * 0.02).to_dict()

    report_us = per_call_us(report, 200)
    print(f"python {platform.python_version()} on {platform.machine()}, {n} frames")
    print(f"baseline json.loads(media message)      {baseline:8.2f} us/frame")
    print(f"meters (seq+clock+jitter+quantile playout) {meter_us:6.2f} us/frame  "
          f"ratio {meter_us / baseline:.2f}x")
    print(f"one call report (figures+E-model x5+dict) {report_us:6.1f} us        "
          f"ratio {report_us / baseline:.0f}x")


if __name__ == "__main__":
    main()
