"""How ``serve --workers N`` splits calls over its workers: calls and CPU per worker.

Runs ``mosbridge serve --workers N`` (pcmu; with ``--baseline DIR`` also another checkout, the two
alternating) in front of one Realtime stand-in, drives it with ``loadtest --target``'s callers (C
calls over a ramp), and counts each worker's calls mid-run from the sockets it holds (two per call,
from /proc, so the count does not rely on the bridge) and its CPU time over the run. An even split
gives each worker C/N calls; a hash-based one (``SO_REUSEPORT``) gives Binomial(C, 1/N), whose
standard deviation is sqrt(C/N * (1 - 1/N)), 5 calls for 100 on 2.

Run: ``.venv/bin/python benchmarks/bench_workers.py [--calls 100] [--ramps 2 10] [--workers 2]
[--rounds 3] [--baseline DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_peers import peer_command, start, stop
from bridge.loadtest.run import LoadOptions, _cpu_s, _free_ports, run_load


@dataclass(frozen=True)
class Row:
    tree: str
    workers: int
    calls: int
    ramp_s: float
    failed: int
    per_worker: tuple[int, ...]  # live calls on each worker mid-run (its sockets, from /proc), by index
    cpu_s: tuple[float, ...]  # each worker's CPU time during the run

    @property
    def busiest_calls_pct(self) -> float:
        return 100.0 * max(self.per_worker) / max(1, sum(self.per_worker))

    @property
    def busiest_cpu_pct(self) -> float:
        return 100.0 * max(self.cpu_s) / max(1e-9, sum(self.cpu_s))


def workers_of(supervisor: int) -> dict[int, int]:
    """The supervisor's worker processes, index -> pid, from /proc (their ``--index`` argument)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != supervisor:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            found[int(argv[argv.index(b"--index") + 1])] = int(entry.name)
    return found


def sockets(pid: int) -> int:
    """Sockets the process holds open (the kernel's view, not the bridge's)."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def one_run(tree: str, source: Path | None, workers: int, calls: int, ramp_s: float, duration: float,
                  realtime_url: str, workdir: Path) -> Row:
    port = _free_ports(1)[0]
    cmd, env, url = peer_command("baseline" if source else "mosbridge", port, realtime_url, workdir, source)
    env["MOSBRIDGE_WORKERS"] = str(workers)
    proc = await start(cmd, env, os.sched_getaffinity(0), port, workdir)
    try:
        async with asyncio.timeout(30):
            while len(pids := workers_of(proc.pid)) < workers:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # each worker listening and idle
        idle = {i: sockets(pid) for i, pid in pids.items()}
        cpu0 = {i: _cpu_s(pid) for i, pid in pids.items()}
        load = asyncio.create_task(run_load(LoadOptions(calls=calls, ramp_s=ramp_s, duration_s=duration, target=url,
                                                        bridge_cpu=None)))
        await asyncio.sleep(ramp_s + 0.5 * (duration - ramp_s))  # every call live, none hung up
        live = {i: sockets(pid) - idle[i] for i, pid in pids.items()}
        r = await load
        cpu = tuple(_cpu_s(pids[i]) - cpu0[i] for i in range(workers))
    finally:
        await stop(proc)
    # A call holds two sockets on its worker: Twilio's and the Realtime session's.
    return Row(tree, workers, calls, ramp_s, r.calls.get("failed", 0),
               tuple(round(live[i] / 2) for i in range(workers)), cpu)


def table(rows: list[Row]) -> str:
    out = ["| tree | workers | calls | ramp (s) | failed | calls per worker | busiest worker's calls % "
           "| busiest worker's CPU % |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.tree} | {r.workers} | {r.calls} | {r.ramp_s:g} | {r.failed} "
                   f"| {' / '.join(map(str, r.per_worker))} | {r.busiest_calls_pct:.0f} | {r.busiest_cpu_pct:.0f} |")
    return "\n".join(out)


async def bench(args: argparse.Namespace) -> list[Row]:
    trees: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mosbridge-workers-") as tmp:
        workdir = Path(tmp)
        port = _free_ports(1)[0]
        stand_in = await start([sys.executable, "-m", "bridge", "fake-realtime", "--port", str(port), "--no-webrtc",
                                "--speed", "4", "--response-ms", "1500"], {}, os.sched_getaffinity(0), port, workdir)
        try:
            for rnd in range(args.rounds):
                for ramp in args.ramps:
                    for tree, source in trees if rnd % 2 == 0 else trees[::-1]:
                        r = await one_run(tree, source, args.workers, args.calls, ramp, args.duration,
                                          f"ws://127.0.0.1:{port}/v1/realtime", workdir)
                        print(f"round {rnd + 1}: {tree}, ramp {ramp:g} s: calls per worker {r.per_worker}, "
                              f"failed {r.failed}", file=sys.stderr, flush=True)
                        rows.append(r)
        finally:
            with contextlib.suppress(ProcessLookupError):
                await stop(stand_in)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--ramps", type=float, nargs="+", default=[2.0, 10.0], help="seconds over which calls start")
    ap.add_argument("--duration", type=float, default=14.0, help="seconds each run lasts (at least the ramp)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="also run mosbridge from this checkout, alternating")
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          "workers, callers and stand-in share them")
    rows = uvloop.run(bench(args))
    print(table(sorted(rows, key=lambda r: (r.ramp_s, r.tree))))


if __name__ == "__main__":
    main()
