"""Issue 16's overload goal: at twice a core's capacity, admitted calls stay clean and the excess is
refused, not queued. Same run: N calls with no limit (the baseline), then 2N calls against a bridge
admitting N (``MOSBRIDGE_MAX_CALLS``), then 2N with no limit (what admission prevents).

Calls arrive at one rate in every run (2N calls take twice N's ramp), so the N admitted calls come
as densely as the baseline's and the rest are refused while they talk; each setup costs the bridge
CPU, and a denser ramp would charge the admitted calls for the arrival rate, not for admission.
"Steady" columns cover the time between the end of the ramp and the first hangups.

Run: ``.venv/bin/python benchmarks/bench_overload.py [--capacity 100] [--duration 20]``.
"""

from __future__ import annotations

import argparse

import uvloop

from bridge.loadtest.run import LoadOptions, LoadResult, run_load


def row(label: str, r: LoadResult) -> str:
    lat, view = r.bridge_latency_ms, r.caller_view

    def p99(d: dict[str, object] | None) -> str:
        v = (d or {}).get("p99")
        return "-" if not isinstance(v, float | int) else f"{v:.1f}"

    steady = "-" if r.steady_deadline_misses is None else str(sum(r.steady_deadline_misses.values()))
    lag = p99({"p99": r.steady_loop_lag["p99_ms"]} if r.steady_loop_lag else None)
    return (f"| {label} | {r.calls['started']} | {r.calls['completed']} | {r.refused} | {r.calls['failed']} "
            f"| {p99(lat.get('inbound'))} | {p99(lat.get('outbound'))} | {sum(r.deadline_misses.values())} "
            f"| {steady} | {lag} | {p99(view.get('to_ai_ms'))} | {p99(view.get('to_caller_ms'))} "
            f"| {(r.mos.get('mean_abs_error') or float('nan')):.3f} |")


async def bench(args: argparse.Namespace) -> None:
    n = args.capacity
    runs = [(f"{n} calls, no limit", n, {}), (f"{2 * n} calls, admits {n}", 2 * n, {"MOSBRIDGE_MAX_CALLS": str(n)}),
            (f"{2 * n} calls, no limit", 2 * n, {})]
    print("| run | started | completed | refused | failed | bridge p99 in (ms) | bridge p99 out (ms) "
          "| deadline misses | steady misses | steady loop lag p99 (ms) | caller p99 to AI (ms) "
          "| caller p99 to caller (ms) | MOS error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ramp = min(5.0, args.duration / 4)  # for N calls
    for label, calls, env in runs:
        opts = LoadOptions(calls=calls, ramp_s=ramp * calls / n, duration_s=args.duration,
                           loss_pct=1.0, jitter_ms=5.0, bridge_env={"MOSBRIDGE_OVERLOAD_LOOP_LAG_MS": "0", **env})
        print(row(label, await run_load(opts)), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capacity", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0)
    uvloop.run(bench(ap.parse_args()))


if __name__ == "__main__":
    main()
