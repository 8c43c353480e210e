"""Where one peer's CPU goes, by Python function: ``perf`` samples of the peer under the Node rig.

The peer (``mosbridge serve`` from a checkout, ``forwarder`` or ``sample``, as ``bench_peers.py``
runs them) serves ``--calls`` pcmu calls alone on CPU 0 while ``perf record --call-graph dwarf``
samples it over the steady part of the run. Python 3.12's perf trampoline (``PYTHONPERFSUPPORT=1``,
the same as ``-X perf``) names each Python frame in the native stack, so every sample is put on its
innermost Python function: that function's own bytecode plus the C it calls (``orjson.loads`` under
``load_twilio``, the ``send`` system call under aiohttp's frame write). Samples with no Python frame
(the event loop's C, the kernel's epoll) go under "(no Python frame)". Two peers profiled the same
way differ by exactly what one does and the other does not. The CPU-ms per call-second it prints
includes perf's own sampling, so compare it only with another run of this script.

Run with a Python of 3.12 or later that has the project installed (``PYTHON=python3.12
VENV=.venv312 scripts/bootstrap.sh --dev``): ``.venv312/bin/python benchmarks/profile_peer.py
[--peer mosbridge|forwarder|sample|CHECKOUT] [--calls 100] [--duration 25] [--top 40]``. Needs
``perf`` (Debian's ``linux-perf``) with ``kernel.perf_event_paranoid`` at 2 or below, and the Node
rig (``scripts/bootstrap.sh --dev``). The sample peer runs in its own venv's Python
(``benchmarks/twilio_sample.py``), so it is named only if that venv is 3.12 or later.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_paired import OTHER_PEERS
from benchmarks.bench_peers import PEER_CPU, peer_command, stand_in_rig, start, stop
from bridge.loadtest.run import LoadOptions, _cpu_s, _free_ports

ROOT = Path(__file__).resolve().parent.parent  # the checkout --peer mosbridge runs
NO_PYTHON = "(no Python frame)"
SETTLE_S = 4.0  # after the ramp: every call up before sampling starts


@dataclass(frozen=True)
class Profile:
    samples: int
    by_function: list[tuple[str, int]]  # innermost Python function, samples; most first


def innermost_python(script: Iterable[str]) -> Profile:
    """Fold ``perf script -F ip,sym`` output (one sample per blank-line-separated block, innermost
    frame first) into samples per innermost ``py::`` frame (perf trampoline symbols)."""
    counts: collections.Counter[str] = collections.Counter()
    samples = 0
    found: str | None = None
    in_sample = False
    for raw in script:
        line = raw.strip()
        if not line:
            if in_sample:
                samples += 1
                counts[found or NO_PYTHON] += 1
            found, in_sample = None, False
            continue
        in_sample = True
        _, _, sym = line.partition(" ")
        if found is None and sym.startswith("py::"):
            found = sym[4:]
    if in_sample:
        samples += 1
        counts[found or NO_PYTHON] += 1
    return Profile(samples, counts.most_common())


async def profile(peer: str, calls: int, duration: float, out: Path) -> float:
    """Run ``peer`` under the rig with ``perf`` recording into ``out``; its CPU-ms per call-second."""
    ramp = max(2.0, calls / 50.0)
    record_s = duration - ramp - SETTLE_S - 1.0
    if record_s < 3.0:
        raise SystemExit(f"--duration {duration:g} leaves {record_s:.1f} s to record: give it more")
    async with stand_in_rig("mosbridge-profile-", node=True) as rig:
        port = _free_ports(1)[0]
        if peer in OTHER_PEERS:
            cmd, env, url = peer_command(peer, port, rig.realtime_url, rig.workdir)
        else:
            cmd, env, url = peer_command("mosbridge", port, rig.realtime_url, rig.workdir)
            env["PYTHONPATH"] = str(ROOT if peer == "mosbridge" else Path(peer).resolve())
        proc = await start(cmd, {**env, "PYTHONPERFSUPPORT": "1"}, {PEER_CPU}, port, rig.workdir)
        try:
            leg = LoadOptions(calls=calls, ramp_s=ramp, duration_s=duration, seed=1, target=url,
                              stand_in_stamps=None, bridge_cpu=None)

            async def record() -> int:
                await asyncio.sleep(ramp + SETTLE_S)
                perf = await asyncio.create_subprocess_exec(
                    "perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(proc.pid),
                    "-o", str(out), "--", "sleep", f"{record_s:.1f}",
                    stdout=asyncio.subprocess.DEVNULL, stderr=(rig.workdir / "perf.stderr").open("wb"))
                return await perf.wait()

            cpu0 = _cpu_s(proc.pid)
            assert rig.node is not None
            (results, _), rc = await asyncio.gather(rig.node.run_legs([leg]), record())
            if rc != 0:
                raise SystemExit(f"perf record failed: {(rig.workdir / 'perf.stderr').read_text()[-2000:]}")
            return 1000.0 * (_cpu_s(proc.pid) - cpu0) / (results[0].call_seconds or 1.0)
        finally:
            await stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default="mosbridge",
                    help="mosbridge (this checkout), forwarder, sample, or the path of another mosbridge checkout")
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--duration", type=float, default=25.0)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    if sys.version_info < (3, 12):
        raise SystemExit("the perf trampoline needs Python 3.12 or later: run this with .venv312/bin/python")
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    with tempfile.TemporaryDirectory(prefix="mosbridge-profile-") as tmp:
        data = Path(tmp) / "perf.data"
        cpu = uvloop.run(profile(args.peer, args.calls, args.duration, data))
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym"],
                                capture_output=True, text=True, check=True).stdout
    prof = innermost_python(script.splitlines())
    name = args.peer if args.peer in (*OTHER_PEERS, "mosbridge") else f"mosbridge ({args.peer})"
    print(f"{name}: {args.calls} calls, {cpu:.2f} CPU-ms per call-second, {prof.samples} samples")
    print("| share | samples | innermost Python function |\n|---|---|---|")
    for name, n in prof.by_function[:args.top]:
        print(f"| {100.0 * n / prof.samples:.1f} % | {n} | `{name}` |")


if __name__ == "__main__":
    main()
