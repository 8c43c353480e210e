"""Issue 16's overload goal: at twice a core's capacity, admitted calls stay clean and the excess is
refused, not queued. Same run: N calls with no limit (the baseline), then 2N calls against a bridge
admitting N (``MOSBRIDGE_MAX_CALLS``), then 2N with no limit (what admission prevents).

Calls arrive at one rate in every run (2N calls take twice N's ramp), so the N admitted calls come
as densely as the baseline's and the rest are refused while they talk; each setup costs the bridge
CPU, and a denser ramp would charge the admitted calls for the arrival rate, not for admission.
"Steady" columns cover the time between the end of the ramp and the first hangups.

The rig is ``bench_peers.py``'s: ``mosbridge serve`` (pcmu, one worker) alone on CPU 0, and the
callers with the Realtime stand-in in this process on the other CPUs, so the callers' view is the
bridge's and not a second rig process's hand-offs. CPU-ms per call-second counts admitted calls.

``--wire`` adds what the bridge added each way on the loopback wire over the steady window
(``benchmarks/wire.py``: dumpcap's kernel stamps, so the rig's own lateness is not in it).

``--rig node`` drives the calls from the Node rig (``benchmarks/node_rig.py``) instead, which keeps
time at twice 200 calls; the bridge's own figures are then read from its ``/stats`` and ``/metrics``.

Run: ``.venv/bin/python benchmarks/bench_overload.py [--capacity 100] [--duration 20] [--rounds 1] [--wire]
[--rig node]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_peers import PEER_CPU, Rig, peer_command, stand_in_rig, start, stop, wait_healthy
from benchmarks.node_rig import NodeRig
from benchmarks.wire import around, read, steady_window
from bridge.loadtest.run import (
    LoadOptions,
    LoadResult,
    _cpu_s,
    _free_ports,
    _lag_buckets,
    _stats,
    bridge_figures,
    note_edge,
    run_load,
)
from bridge.stand_ins.twilio_caller import FRAME_S


def row(label: str, r: LoadResult, cpu_ms: float, wire: dict[str, Any] | None = None) -> str:
    lat, view = r.bridge_latency_ms, r.caller_view

    def p99(d: dict[str, object] | None) -> str:
        v = (d or {}).get("p99")
        return "-" if not isinstance(v, float | int) else f"{v:.1f}"

    steady = "-" if r.steady_deadline_misses is None else str(sum(r.steady_deadline_misses.values()))
    lag = p99({"p99": r.steady_loop_lag["p99_ms"]} if r.steady_loop_lag else None)
    return (f"| {label} | {r.calls['started']} | {r.calls['completed']} | {r.refused} | {r.calls['failed']} "
            f"| {p99(lat.get('inbound'))} | {p99(lat.get('outbound'))} | {sum(r.deadline_misses.values())} "
            f"| {steady} | {lag} | {p99(view.get('to_ai_ms'))} | {p99(view.get('to_caller_ms'))} "
            f"| {p99(view.get('steady_to_ai_ms'))} / {p99(view.get('steady_to_caller_ms'))} "
            f"| {(r.mos.get('mean_abs_error') or float('nan')):.3f} | {cpu_ms:.2f} |"
            + ("" if wire is None else f" {p99(wire.get('to_ai_ms'))} / {p99(wire.get('to_caller_ms'))} |"))


async def one_run(rig: Rig, calls: int, ramp_s: float, duration: float, env: dict[str, str],
                  wire: bool = False) -> tuple[LoadResult, float, dict[str, Any] | None]:
    """One run against a fresh ``mosbridge serve`` on CPU 0; (result, CPU-ms per admitted call-second,
    the wire's figures with ``wire``)."""
    port = _free_ports(1)[0]
    cmd, peer_env, url = peer_command("mosbridge", port, rig.realtime_url, rig.workdir)
    peer_env = {**peer_env, "MOSBRIDGE_OVERLOAD_LOOP_LAG_MS": "0", **env}
    proc = await start(cmd, peer_env, {PEER_CPU}, port, rig.workdir)
    pcap = rig.workdir / f"wire-{port}.pcapng"
    try:
        await wait_healthy(port)
        with around(wire, pcap, port, rig.realtime_url, rig.cpus):
            cpu0 = _cpu_s(proc.pid)
            opts = LoadOptions(calls=calls, ramp_s=ramp_s, duration_s=duration, loss_pct=1.0, jitter_ms=5.0,
                               target=url, database_url=peer_env["MOSBRIDGE_DATABASE_URL"], bridge_cpu=None)
            if rig.node is None:
                t0 = time.monotonic()
                r = await run_load(dataclasses.replace(opts, stand_in_stamps=str(rig.stamps)))
            else:
                r, t0 = await node_run(rig.node, opts, f"http://127.0.0.1:{port}")
            cpu = _cpu_s(proc.pid) - cpu0
    finally:
        await stop(proc)
    admitted_s = r.frames["caller_sent"] * FRAME_S  # the completed calls' frames: refused ones sent none
    figures = None
    if wire:
        figures = await read(pcap, steady_window(t0, ramp_s, duration))
    return r, 1000.0 * cpu / (admitted_s or 1.0), figures


async def node_run(node: NodeRig, opts: LoadOptions, base_url: str) -> tuple[LoadResult, float]:
    """The Node rig's run, with the bridge's own figures read as ``run_load`` reads them: ``/stats``
    and the lag histogram at the steady window's edges, and ``/stats`` at the end."""
    lag_buckets: list[dict[float, float]] = []
    window_misses: list[dict[str, int]] = []
    edges: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession() as http:
        async def at_edges(t0: float) -> None:
            for at in (t0 + opts.ramp_s + 1.0, t0 + opts.duration_s - 1.0):
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                note_edge(await _stats(http, base_url + "/stats"), await _lag_buckets(http, base_url + "/metrics"),
                          lag_buckets, window_misses)

        r, t0 = await node.run(opts, on_start=lambda t0: edges.append(asyncio.create_task(at_edges(t0))))
        await asyncio.gather(*edges)
        bridge_figures(r, await _stats(http, base_url + "/stats"), lag_buckets, window_misses)
    return r, t0


async def bench(args: argparse.Namespace) -> None:
    n = args.capacity
    runs = [(f"{n} calls, no limit", n, {}), (f"{2 * n} calls, admits {n}", 2 * n, {"MOSBRIDGE_MAX_CALLS": str(n)}),
            (f"{2 * n} calls, no limit", 2 * n, {})]
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs; mosbridge on CPU {PEER_CPU}, "
          "callers and stand-in on the others")
    print("| run | started | completed | refused | failed | bridge p99 in (ms) | bridge p99 out (ms) "
          "| deadline misses | steady misses | steady loop lag p99 (ms) | caller p99 to AI (ms) "
          "| caller p99 to caller (ms) | steady caller p99 to AI / to caller (ms) | MOS error "
          "| CPU-ms per admitted call-s |" + (" wire p99 to AI / to caller (ms) |" if args.wire else ""))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.wire else ""))
    ramp = min(5.0, args.duration / 4)  # for N calls
    async with stand_in_rig("mosbridge-overload-", args.rig == "node") as rig:
        for _ in range(args.rounds):
            for label, calls, env in runs:
                r, cpu_ms, wire = await one_run(rig, calls, ramp * calls / n, args.duration, env, args.wire)
                print(row(label, r, cpu_ms, wire), flush=True)
                if rig.node is not None:
                    print(f"  {label}: the rig sent frames late by {r.caller_view.get('rig_send_late_ms')} ms; "
                          f"its GC: {r.caller_view.get('rig_gc')}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capacity", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--wire", action="store_true", help="also read what the bridge added on the wire "
                    "(dumpcap and tshark, benchmarks/wire.py)")
    ap.add_argument("--rig", choices=("python", "node"), default="python", help="who drives the calls: this "
                    "process or the Node rig (benchmarks/node_rig.py), which keeps time at 200 calls and more")
    uvloop.run(bench(ap.parse_args()))


if __name__ == "__main__":
    main()
