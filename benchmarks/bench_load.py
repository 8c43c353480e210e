"""Capacity on this machine: calls per core, bridge-added latency, CPU and memory per call, and the
MOS error, from ``mosbridge loadtest`` runs; plus libopus encode+decode alone, in the same run.

Run: ``.venv/bin/python benchmarks/bench_load.py [--calls 60 120] [--duration 20]
[--formats pcmu pcm24k opus16k] [--find-max]`` (a few minutes; opus16k is the WebRTC leg). The
bridge is pinned to one CPU; the callers and the Realtime stand-in share the other, so on a 2-core
machine the rig, not the bridge, can be what saturates first: read the MOS error column with that
in mind.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import uvloop

from bridge.codecs.opus import OpusDecoder, OpusEncoder
from bridge.loadtest.run import LoadOptions, find_max, is_clean, run_load
from bridge.stand_ins.realtime_ws import speech_like


def libopus_ms_per_call_second(cpu: int = 0, rounds: int = 7) -> float:
    """CPU of libopus alone for one call-second, as the bridge uses it: 50 encodes of 20 ms at
    16 kHz and 50 decodes of those packets to 8 kHz. On the bridge's CPU; the median of
    ``rounds`` rounds after a warm-up one (a round is 2 s of audio), so neither a cold cache nor a
    neighbour's burst sets the baseline."""
    pcm = speech_like(2000, 16000)
    frames = [pcm[i:i + 320] for i in range(0, pcm.size - 319, 320)]
    enc, dec = OpusEncoder(24000), OpusDecoder(8000)
    packets = [enc.encode(f) for f in frames]
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        per_round = []
        for _ in range(rounds + 1):
            t0 = time.process_time()
            for f, p in zip(frames, packets, strict=True):
                enc.encode(f)
                dec.decode(p)
            per_round.append((time.process_time() - t0) / len(frames))
    finally:
        os.sched_setaffinity(0, own)
    return float(np.median(per_round[1:])) * 50 * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, nargs="+", default=[60, 120])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--find-max", action="store_true")
    ap.add_argument("--formats", nargs="+", choices=["pcmu", "pcm24k", "opus16k"], default=["pcmu", "pcm24k"],
                    help="AI-side formats to load (opus16k: the WebRTC leg)")
    args = ap.parse_args()
    opus = libopus_ms_per_call_second(LoadOptions().bridge_cpu or 0)
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    print(f"libopus encode+decode alone: {opus:.2f} CPU-ms per call-second")
    print("| format | calls | bridge CPU % | rig CPU % | CPU-ms per call-s | ratio to libopus | RSS MB per call | "
          "p50 / p99 / max in (ms) | p50 / p99 / max out (ms) | loop lag p99, calls up / whole run (ms) | "
          "deadline misses, calls up / whole run | MOS error (mean abs) | reports flagged saturated | clean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for fmt in args.formats:
        for n in args.calls:
            r = uvloop.run(run_load(LoadOptions(calls=n, ramp_s=4.0, duration_s=args.duration, ai_format=fmt,
                                                 loss_pct=1.0, jitter_ms=5.0)))
            lat = r.bridge_latency_ms
            cpu = r.bridge_cpu_ms_per_call_second or 0.0

            def trip(d: dict[str, float]) -> str:
                return f"{d['p50']:.2f} / {d['p99']:.2f} / {d['max']:.1f}"

            whole = (r.event_loop_lag_ms or {}).get("p99", float("nan"))
            steady = (r.steady_loop_lag or {}).get("p99_ms", float("nan"))
            steady_misses = "—" if r.steady_deadline_misses is None else sum(r.steady_deadline_misses.values())
            whole_misses = sum(r.deadline_misses.values())
            print(f"| {fmt} | {n} | {r.bridge_cpu_pct or 0:.0f} | {r.rig_cpu_pct or 0:.0f} | {cpu:.2f} | "
                  f"{cpu / opus:.2f} | {r.rss_mb_per_call or 0:.3f} | {trip(lat['inbound'])} | "
                  f"{trip(lat['outbound'])} | {steady:.1f} / {whole:.1f} | {steady_misses} / {whole_misses} | "
                  f"{r.mos['mean_abs_error']:.3f} | {r.mos['reports_flagged_saturated']} / {r.mos['reports']} | "
                  f"{'yes' if is_clean(r) else 'no'} |", flush=True)
    if args.find_max:
        best, runs = uvloop.run(find_max(LoadOptions(duration_s=args.duration, ramp_s=4.0)))
        steps = ", ".join(f"{r.options['calls']}: {'clean' if r.options['calls'] <= best else 'not clean'}"
                          for r in runs)
        print(f"find-max (pcmu; clean = 0 deadline misses, p99 <= 5 ms, loop lag p99 <= 5 ms): "
              f"highest clean N = {best}  [{steps}]")


if __name__ == "__main__":
    main()
