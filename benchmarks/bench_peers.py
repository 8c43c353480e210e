"""mosbridge beside the bare forwarder and Twilio's sample, under the same callers.

Each peer runs alone on CPU 0 with one process (``mosbridge serve``, pcmu, one worker;
``benchmarks/forwarder.py``; ``benchmarks/twilio_sample_app.py`` in the venv that
``benchmarks/twilio_sample.py`` makes), in front of one Realtime stand-in (``fake-realtime
--stamps``), and is driven by ``mosbridge loadtest --target`` with the same seeded callers. The
callers and the stand-in are one process on the other CPUs (the rig), on one event loop: two busy
rig processes sharing a CPU would hand it to each other every few ms, and the frames waiting
through each hand-off would count as the peer's latency. Rounds alternate the peers' order so
drift of a shared machine hits them alike.
Per run: the peer's CPU-ms per call-second (/proc), WebSocket messages per call-second each way
(what the peer reads plus writes: caller->AI is the callers' messages and the appends; AI->caller
the stand-in's events and what the callers got), the callers' p99 each way, and AI audio queued
at hangup (``bridge.loadtest.caller_view``). ``--wire`` also captures the peer's sockets with
dumpcap and reads, over the steady window, what the peer added each way on the wire
(``benchmarks/wire.py``): kernel stamps, so the rig's own lateness is not in it; the capture's tap
costs the peer some kernel CPU, so a ``--wire`` run's CPU column is not the one to compare.
``--rig node`` drives the same planned calls from the Node rig (``benchmarks/node_rig.py``: callers
and stand-in on one Node.js loop, about 40 % of a CPU at 200 calls where this process needs 85-90 %),
and adds how late it sent the callers' frames.

Run: ``.venv/bin/python benchmarks/bench_peers.py [--calls 50 100 200] [--duration 20] [--rounds 2]
[--baseline DIR] [--wire] [--rig node]``; ``--baseline`` adds mosbridge from another checkout as the
peer ``baseline``, for a before/after in one run (``git worktree add ../before HEAD~1``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.node_rig import NodeRig, node_rig
from benchmarks.wire import around, read, steady_window
from bridge.loadtest.run import LoadOptions, LoadResult, _cpu_s, _free_ports, _source_path, run_load
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from bridge.stand_ins.stamp_log import StampLog

HERE = Path(__file__).resolve().parent
SAMPLE_PYTHON = HERE / ".venv-sample" / "bin" / "python"
PEERS = ("mosbridge", "baseline", "forwarder", "sample")  # baseline: mosbridge from --baseline DIR
PEER_CPU = 0
STARTUP_S = 60.0


@dataclass(frozen=True)
class Row:
    peer: str
    calls: int
    failed: int
    cpu_ms_per_call_s: float
    to_ai_msgs: float  # per call-second, read + written by the peer
    to_caller_msgs: float
    p99_to_ai_ms: float | None
    p99_to_caller_ms: float | None
    steady_p99_to_ai_ms: float | None  # frames sent while every call was up and none had hung up
    steady_p99_to_caller_ms: float | None
    queued_p50_ms: float | None
    queued_max_ms: float | None
    rig_cpu_pct: float
    wire: dict[str, Any] | None = None  # benchmarks/wire.py's figures, with --wire
    rig_late_ms: dict[str, float] | None = None  # the Node rig: how late it sent the callers' frames
    rig_gc: dict[str, float] | None = None  # the Node rig: its GC pauses during the run (count, total, max)


def peer_command(peer: str, port: int, realtime_url: str, workdir: Path,
                 baseline: Path | None = None) -> tuple[list[str], dict[str, str], str]:
    """The peer's command, environment and media URL."""
    if peer in ("mosbridge", "baseline"):
        env = {"MOSBRIDGE_HOST": "127.0.0.1", "MOSBRIDGE_PORT": str(port), "MOSBRIDGE_OPENAI_URL": realtime_url,
               "OPENAI_API_KEY": "bench", "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0",
               "MOSBRIDGE_DATABASE_URL": f"sqlite:///{workdir / f'peers-{port}.db'}", "MOSBRIDGE_AI_FORMAT": "pcmu",
               "MOSBRIDGE_LOG_LEVEL": "ERROR", "MOSBRIDGE_PSEUDONYM_KEY": "bench",
               "MOSBRIDGE_CAPTURE_PER_CALL": "0", "MOSBRIDGE_WORKERS": "1"}
        if peer == "baseline":
            assert baseline is not None
            env["PYTHONPATH"] = str(baseline.resolve())
        return [sys.executable, "-m", "bridge", "serve"], env, f"ws://127.0.0.1:{port}/media"
    if peer == "forwarder":
        return ([sys.executable, str(HERE / "forwarder.py"), "--port", str(port), "--realtime-url", realtime_url],
                {}, f"ws://127.0.0.1:{port}/media")
    env = {"PORT": str(port), "OPENAI_API_KEY": "bench", "OPENAI_REALTIME_URL": realtime_url}
    return [str(SAMPLE_PYTHON), str(HERE / "twilio_sample_app.py")], env, f"ws://127.0.0.1:{port}/media-stream"


async def start(cmd: list[str], env: dict[str, str], cpus: set[int], port: int,
                workdir: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *cmd, env={**os.environ, "PYTHONPATH": _source_path(), **env}, cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL, stderr=(workdir / f"{port}.stderr").open("wb"))
    with contextlib.suppress(OSError):
        os.sched_setaffinity(proc.pid, cpus)
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"{cmd} exited: {(workdir / f'{port}.stderr').read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{cmd} did not listen on {port}")


@dataclass(frozen=True)
class Rig:
    """The callers' side of a run: its CPUs, a work directory, the Realtime stand-in, and who drives the
    calls: this process (``run_load`` with the Python stand-in's ``stamps``) or the Node rig (``node``)."""

    cpus: set[int]
    workdir: Path
    realtime_url: str
    stamps: Path | None
    node: NodeRig | None = None

    async def drive(self, opts: LoadOptions) -> tuple[LoadResult, float]:
        """``opts``' calls against ``opts.target``; (the result, the run's start on the monotonic clock)."""
        if self.node is not None:
            return await self.node.run(opts)
        t0 = time.monotonic()
        return await run_load(dataclasses.replace(opts, stand_in_stamps=str(self.stamps))), t0

    def cpu_s(self) -> float:
        """CPU seconds the rig has used: the Node process, or this one (callers and stand-in)."""
        return self.node.cpu_s() if self.node is not None else _cpu_s(os.getpid())


@contextlib.asynccontextmanager
async def stand_in_rig(prefix: str, node: bool = False) -> AsyncIterator[Rig]:
    """A temporary work directory and the Realtime stand-in (pcmu, answering 4x real time, writing
    stamps), pinned to every CPU but the peer's: on this process's loop, beside the callers, or with
    ``node`` the Node rig (``benchmarks/node_rig.py``, callers and stand-in in one Node process); both
    undone on exit."""
    own = os.sched_getaffinity(0)
    cpus = (own - {PEER_CPU}) or own
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        os.sched_setaffinity(0, cpus)
        try:
            if node:
                async with node_rig(workdir, cpus) as js:
                    yield Rig(cpus, workdir, js.realtime_url, None, js)
                return
            stamps = workdir / "stamps.jsonl"
            server = FakeRealtimeServer(FakeRealtimeConfig(speed=4.0, response_ms=1500),
                                        StampLog(stamps, time.monotonic))
            await server.start("127.0.0.1", 0)
            try:
                yield Rig(cpus, workdir, f"ws://127.0.0.1:{server.port}/v1/realtime", stamps)
            finally:
                await server.close()
        finally:
            os.sched_setaffinity(0, own)


async def wait_healthy(port: int) -> None:
    """mosbridge's readiness is its health check, not its port: wait (up to 20 s) for ``/healthz``."""
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                    if health.status == 200:
                        return
            await asyncio.sleep(0.1)


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 15)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def one_run(peer: str, calls: int, duration: float, seed: int, rig: Rig, baseline: Path | None = None,
                  wire: bool = False) -> Row:
    port = _free_ports(1)[0]
    cmd, env, url = peer_command(peer, port, rig.realtime_url, rig.workdir, baseline)
    proc = await start(cmd, env, {PEER_CPU}, port, rig.workdir)
    if peer in ("mosbridge", "baseline"):
        await wait_healthy(port)
    pcap = rig.workdir / f"wire-{port}.pcapng"
    opts = LoadOptions(calls=calls, ramp_s=max(2.0, calls / 50.0), duration_s=duration, seed=seed,
                       target=url, bridge_cpu=None)
    try:
        with around(wire, pcap, port, rig.realtime_url, rig.cpus):
            cpu0 = _cpu_s(proc.pid)
            rig0 = rig.cpu_s()
            w0 = time.monotonic()
            r, t0 = await rig.drive(opts)
            wall = time.monotonic() - w0
            cpu = _cpu_s(proc.pid) - cpu0
            rig_cpu = rig.cpu_s() - rig0
    finally:
        await stop(proc)
    out = row(peer, calls, r, cpu, 100.0 * rig_cpu / wall / max(1, len(rig.cpus)))
    if wire:
        window = steady_window(t0, opts.ramp_s, opts.duration_s)
        out = dataclasses.replace(out, wire=await read(pcap, window))
    return out


def row(peer: str, calls: int, r: LoadResult, cpu_s: float, rig_pct: float) -> Row:
    cs = r.call_seconds or 1.0
    m = r.messages
    v = r.caller_view

    def p(key: str, q: str) -> float | None:
        figures = v.get(key)
        return None if not figures else float(figures[q])

    return Row(peer, calls, r.calls.get("failed", 0), 1000.0 * cpu_s / cs,
               (m.get("caller_sent", 0) + m.get("ai_received", 0)) / cs,
               (m.get("ai_sent", 0) + m.get("caller_received", 0)) / cs,
               p("to_ai_ms", "p99"), p("to_caller_ms", "p99"), p("steady_to_ai_ms", "p99"),
               p("steady_to_caller_ms", "p99"), p("queued_at_hangup_ms", "p50"), p("queued_at_hangup_ms", "max"),
               rig_pct, rig_late_ms=v.get("rig_send_late_ms"), rig_gc=v.get("rig_gc"))


def table(rows: list[Row]) -> str:
    def f(x: float | None, d: int = 1) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    def on_wire(w: dict[str, Any] | None, key: str, q: str) -> float | None:
        return None if w is None or not w.get(key) else float(w[key][q])

    wired = any(r.wire is not None for r in rows)
    timed = any(r.rig_late_ms is not None for r in rows)
    out = ["| peer | calls | failed | CPU-ms per call-s | msgs per call-s caller->AI | msgs per call-s AI->caller "
           "| caller p99 to AI (ms) | caller p99 to caller (ms) | steady caller p99 to AI / to caller (ms) "
           "| queued at hangup p50 / max (ms) | rig CPU % |"
           + (" rig sent frames late, p99 / max (ms) |" if timed else "")
           + (" wire p50 / p99 / max to AI (ms) | wire p50 / p99 / max to caller (ms) "
              "| caller frames per 5 ms, mean / p99 / max |" if wired else ""),
           "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if timed else "")
           + ("---|---|---|" if wired else "")]
    for r in rows:
        line = (f"| {r.peer} | {r.calls} | {r.failed} | {r.cpu_ms_per_call_s:.2f} | {r.to_ai_msgs:.1f} "
                f"| {r.to_caller_msgs:.1f} | {f(r.p99_to_ai_ms, 2)} | {f(r.p99_to_caller_ms, 2)} "
                f"| {f(r.steady_p99_to_ai_ms, 2)} / {f(r.steady_p99_to_caller_ms, 2)} "
                f"| {f(r.queued_p50_ms)} / {f(r.queued_max_ms)} | {r.rig_cpu_pct:.0f} |")
        if timed:
            late = r.rig_late_ms or {}
            line += f" {f(late.get('p99'), 2)} / {f(late.get('max'), 1)} |"
        if wired:
            line += "".join(" " + " / ".join(f(on_wire(r.wire, k, q), 2) for q in ("p50", "p99", "max")) + " |"
                            for k in ("to_ai_ms", "to_caller_ms"))
            a = (r.wire or {}).get("arrivals") or {}
            line += " " + " / ".join(f(a.get(k), 0) for k in ("per_5ms_mean", "per_5ms_p99", "per_5ms_max")) + " |"
        out.append(line)
    return "\n".join(out)


async def bench(args: argparse.Namespace) -> list[Row]:
    if args.baseline is not None and "baseline" not in args.peers:
        args.peers.insert(1, "baseline")
    if "baseline" in args.peers and args.baseline is None:
        raise SystemExit("the baseline peer needs --baseline DIR (a checkout of mosbridge)")
    peers = [p for p in args.peers if p != "sample" or SAMPLE_PYTHON.exists()]
    if len(peers) < len(args.peers):
        print("no benchmarks/.venv-sample: run benchmarks/twilio_sample.py first; the sample is left out",
              file=sys.stderr)
    rows: list[Row] = []
    async with stand_in_rig("mosbridge-peers-", args.rig == "node") as rig:
        for rnd in range(args.rounds):
            order = peers if rnd % 2 == 0 else peers[::-1]
            for calls in args.calls:
                for peer in order:
                    r = await one_run(peer, calls, args.duration, args.seed, rig, args.baseline, args.wire)
                    print(f"round {rnd + 1}: {peer} {calls} calls: {r.cpu_ms_per_call_s:.2f} CPU-ms per "
                          f"call-second, failed {r.failed}"
                          + ("" if r.rig_gc is None else f"; the rig's GC pauses: {r.rig_gc}"),
                          file=sys.stderr, flush=True)
                    if r.wire is not None:
                        print(f"  on the wire: {r.wire}", file=sys.stderr, flush=True)
                    rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--peers", nargs="+", choices=PEERS, default=["mosbridge", "forwarder", "sample"])
    ap.add_argument("--baseline", type=Path, help="also run mosbridge from this checkout (e.g. a worktree of the "
                    "commit before a change) as the peer 'baseline', alternating with the others")
    ap.add_argument("--wire", action="store_true", help="also capture the peer's sockets (dumpcap) and read what "
                    "it added each way on the wire (benchmarks/wire.py)")
    ap.add_argument("--rig", choices=("python", "node"), default="python", help="who drives the calls: this "
                    "process (bridge/loadtest, the Python stand-in) or the Node rig (benchmarks/node_rig.py), light "
                    "enough to keep time at 200 calls")
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"peer on CPU {PEER_CPU}, callers and stand-in on the others")
    rows = uvloop.run(bench(args))
    print(table(sorted(rows, key=lambda r: (r.calls, PEERS.index(r.peer)))))


if __name__ == "__main__":
    main()
