"""Issue 16's before/after: the AI's audio to Twilio as one message per 20 ms frame
(``MOSBRIDGE_OUTBOUND_CHUNK_MS=0``, as before) or in 100 ms messages (the default), at given
calls per core, in the same run, rounds alternating.

Run: ``.venv/bin/python benchmarks/bench_outbound.py [--calls 100 200 300] [--duration 20]
[--rounds 1]``. Each cell is ``mosbridge loadtest`` (bridge pinned to CPU 0, pcmu, 1 % loss,
5 ms jitter): the bridge's CPU-ms per call-second (/proc), the WebSocket messages the callers
received per call-second (what the bridge wrote toward Twilio), the bridge-added p99 per
direction (its own stamps) and the callers' p99 each way (caller_view).
"""

from __future__ import annotations

import argparse
import platform

import uvloop

from bridge.loadtest.run import LoadOptions, LoadResult, run_load

SETTINGS = {"frames (before)": "0", "100 ms (after)": "100"}


def row(label: str, calls: int, r: LoadResult) -> str:
    cs = r.call_seconds or 1.0
    lat = r.bridge_latency_ms
    view = r.caller_view
    to_ai = (view.get("to_ai_ms") or {}).get("p99")
    to_caller = (view.get("to_caller_ms") or {}).get("p99")

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    return (f"| {label} | {calls} | {r.calls.get('failed', 0)} | {f(r.bridge_cpu_ms_per_call_second)} "
            f"| {r.messages.get('caller_received', 0) / cs:.1f} | {f(lat.get('inbound', {}).get('p99'))} "
            f"| {f(lat.get('outbound', {}).get('p99'))} | {sum(r.deadline_misses.values())} "
            f"| {f(to_ai)} | {f(to_caller)} | {f(r.mos.get('mean_abs_error'))} |")


async def bench(args: argparse.Namespace) -> list[str]:
    rows = []
    for calls in args.calls:
        for rnd in range(args.rounds):
            order = list(SETTINGS.items())
            if rnd % 2:
                order.reverse()
            for label, chunk in order:
                opts = LoadOptions(calls=calls, ramp_s=min(5.0, args.duration / 4), duration_s=args.duration,
                                   loss_pct=1.0, jitter_ms=5.0, seed=args.seed + rnd,
                                   bridge_env={"MOSBRIDGE_OUTBOUND_CHUNK_MS": chunk,
                                               "MOSBRIDGE_OVERLOAD_LOOP_LAG_MS": "0"})  # chunking alone
                rows.append(row(label, calls, await run_load(opts)))
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[100, 200, 300])
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, pcmu, bridge on CPU 0, {args.duration:g} s runs")
    print("| outbound | calls | failed | CPU-ms per call-s | msgs to caller per call-s | bridge p99 in (ms) "
          "| bridge p99 out (ms) | deadline misses | caller p99 to AI (ms) | caller p99 to caller (ms) | MOS error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    uvloop.run(bench(args))


if __name__ == "__main__":
    main()
