"""Two peers at the same time on one core: CPU per call-second of each, and their ratio.

Separate runs cannot resolve a change of 10 % on a shared 2-vCPU machine: the same tree measures
±10 % from one run to the next (``benchmarks/README.md``). Here tree A and tree B (``mosbridge
serve``, pcmu, one worker each) share CPU 0 for the whole run, in front of one Realtime stand-in,
each driven by its own seeded callers (``mosbridge loadtest --target``) from the rig on the other
CPU, so whatever slows the machine slows both, and B/A is read per round. Run it once with both
sides on the same tree to see its noise (an A/A run). Either side may instead be ``forwarder`` or
``sample``, the other peers of ``bench_peers.py``.

Run: ``.venv/bin/python benchmarks/bench_paired.py A B [--calls 50] [--rounds 3] [--duration 15]
[--b-env KEY=VALUE ...] [--rig node]``; A and B are mosbridge checkouts (``git worktree add ../before
HEAD~1``), ``forwarder`` or ``sample``; ``--b-env`` sets variables for B alone (an experiment switch);
``--rig node`` drives both sides' calls from the Node rig (``benchmarks/node_rig.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_peers import PEER_CPU, Rig, peer_command, stand_in_rig, start, stop
from bridge.loadtest.run import LoadOptions, _cpu_s, _free_ports, run_load

OTHER_PEERS = ("forwarder", "sample")


async def one_round(sides: list[tuple[str, dict[str, str]]], calls: int, duration: float, seed: int,
                    rig: Rig) -> tuple[list[float], list[int]]:
    realtime_url, workdir = rig.realtime_url, rig.workdir
    procs, urls = [], []
    try:
        for side, extra in sides:
            port = _free_ports(1)[0]
            if side in OTHER_PEERS:
                cmd, env, url = peer_command(side, port, realtime_url, workdir)
            else:
                cmd, env, url = peer_command("mosbridge", port, realtime_url, workdir)
                env["PYTHONPATH"] = str(Path(side).resolve())
            procs.append(await start(cmd, {**env, **extra}, {PEER_CPU}, port, workdir))
            urls.append(url)
        await asyncio.sleep(3.0)  # both up and idle before either is measured
        cpu0 = [_cpu_s(p.pid) for p in procs]
        legs = [LoadOptions(calls=calls, ramp_s=max(2.0, calls / 50.0), duration_s=duration, seed=seed + i,
                            target=url, stand_in_stamps=None if rig.stamps is None else str(rig.stamps),
                            bridge_cpu=None) for i, url in enumerate(urls)]
        if rig.node is not None:
            results, _ = await rig.node.run_legs(legs)
        else:
            results = list(await asyncio.gather(*(run_load(o) for o in legs)))
        cpu = [1000.0 * (_cpu_s(p.pid) - c) / (r.call_seconds or 1.0) for p, c, r in zip(procs, cpu0, results,
                                                                                          strict=True)]
        return cpu, [r.calls.get("failed", 0) for r in results]
    finally:
        for p in procs:
            await stop(p)


async def bench(args: argparse.Namespace) -> list[float]:
    sides = [(args.a, {}), (args.b, dict(kv.split("=", 1) for kv in args.b_env))]
    ratios: list[float] = []
    async with stand_in_rig("mosbridge-paired-", args.rig == "node") as rig:
        for rnd in range(args.rounds):
            (a, b), failed = await one_round(sides, args.calls, args.duration, args.seed, rig)
            ratios.append(b / a)
            print(f"| {rnd + 1} | {a:.2f} | {b:.2f} | {b / a:.3f} | {failed[0]} / {failed[1]} |", flush=True)
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="side A (the baseline): a mosbridge checkout, forwarder or sample")
    ap.add_argument("b", help="side B (the change): a mosbridge checkout, forwarder or sample")
    ap.add_argument("--calls", type=int, default=50, help="calls per tree (both share one core)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--b-env", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rig", choices=("python", "node"), default="python",
                    help="who drives both sides' calls: this process or the Node rig (benchmarks/node_rig.py)")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; A={args.a} B={args.b}, {args.calls} calls each "
          f"on CPU {PEER_CPU}", file=sys.stderr)
    print("| round | A CPU-ms per call-s | B CPU-ms per call-s | B / A | failed A / B |\n|---|---|---|---|---|")
    ratios = uvloop.run(bench(args))
    print(f"\nB / A: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
