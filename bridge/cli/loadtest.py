"""``mosbridge loadtest``: how many calls per core, at what added latency, with a true MOS."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import uvloop

from bridge.cli.arg_types import non_negative, positive, positive_int
from bridge.loadtest.arrivals import ARRIVALS
from bridge.loadtest.run import RIG_SATURATED_PCT, LoadOptions, LoadResult, find_max, run_load


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "loadtest",
        help="drive N simulated callers through a bridge and the Realtime stand-in on loopback",
        description="Start a bridge (pinned to one CPU) and the Realtime stand-in, or use --target, and "
        "drive simulated Twilio callers through them (N calls on a ramp, or a fixed arrival rate); report "
        "calls, frames, deadline misses, bridge-added latency, event-loop lag, CPU and memory per call, "
        "reported vs expected MOS, and (pcmu) the latency each way and audio queued at hangup as the "
        "callers saw it.",
    )
    p.add_argument("--calls", type=positive_int, default=None, help="concurrent calls on a ramp (default 20)")
    p.add_argument("--ramp", type=non_negative, default=None, help="seconds over which calls start (default 2)")
    p.add_argument("--rate", type=positive, default=None,
                   help="calls arriving per second for --duration, instead of --calls")
    p.add_argument("--call-seconds", type=positive, default=10.0,
                   help="with --rate: how long each call lasts (default 10)")
    p.add_argument("--arrivals", choices=ARRIVALS, default="poisson",
                   help="with --rate: Poisson arrivals (exponential gaps) or evenly spaced, seeded by --seed "
                        "(default poisson)")
    p.add_argument("--duration", type=non_negative, default=10.0,
                   help="seconds the run lasts; with --rate, seconds during which calls arrive (default 10)")
    p.add_argument("--format", choices=["pcmu", "pcm24k", "opus16k"], default="pcmu",
                   help="AI-side format: pcmu or pcm24k over the Realtime WebSocket, opus16k over WebRTC")
    p.add_argument("--loss-pct", type=non_negative, default=0.0, help="random frame loss at the callers, %%")
    p.add_argument("--jitter-ms", type=non_negative, default=0.0,
                   help="mean of exponentially distributed extra delay per frame, ms")
    p.add_argument("--delay-ms", type=non_negative, default=0.0, help="constant one-way network delay, ms")
    p.add_argument("--target", metavar="URL", help="ws://host:port/media of a running bridge instead")
    p.add_argument("--database-url", help="with --target: that bridge's report store, to read MOS back")
    p.add_argument("--stand-in-stamps", metavar="FILE",
                   help="with --target: the file the stand-in behind that bridge writes with "
                        "`fake-realtime --stamps FILE`, for the callers' view")
    p.add_argument("--seed", type=int, default=1, help="seed of the impairment generator (default 1)")
    p.add_argument("--find-max", action="store_true",
                   help="ramp the call count until deadline misses, p99 > 5 ms or event-loop lag p99 > 5 ms; "
                        "report the highest clean N")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if args.loss_pct > 50:
        args.parser.error("--loss-pct must be at most 50")
    if args.rate is not None and (args.calls is not None or args.ramp is not None or args.find_max):
        args.parser.error("--rate replaces --calls, --ramp and --find-max")
    if args.rate is not None and args.duration <= 0:
        args.parser.error("--rate needs a --duration over 0")
    ramp = 2.0 if args.ramp is None else args.ramp
    if args.rate is None and ramp >= args.duration:
        args.parser.error("--ramp must be shorter than --duration")
    if args.stand_in_stamps and not args.target:
        args.parser.error("--stand-in-stamps goes with --target (without it the load test runs its own stand-in)")
    opts = LoadOptions(calls=args.calls or 20, ramp_s=ramp, duration_s=args.duration, ai_format=args.format,
                       loss_pct=args.loss_pct, jitter_ms=args.jitter_ms, delay_ms=args.delay_ms,
                       target=args.target, database_url=args.database_url, seed=args.seed,
                       rate=args.rate, call_seconds=args.call_seconds, arrivals=args.arrivals,
                       stand_in_stamps=args.stand_in_stamps,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.find_max:
        best, runs = uvloop.run(find_max(opts))
        out: dict[str, Any] = {"max_clean_calls": best, "runs": [r.to_dict() for r in runs]}
        print(json.dumps(out) if args.json else _human_find_max(best, runs))
        return 0
    result = uvloop.run(run_load(opts))
    print(json.dumps(result.to_dict()) if args.json else _human(result))
    return 0 if not result.calls.get("failed") else 1


def _fmt(d: dict[str, float] | None) -> str:
    if not d:
        return "-"
    return " ".join(f"{k} {v:.2f}" for k, v in d.items())


def _human(r: LoadResult) -> str:
    lines = [
        f"calls        started {r.calls['started']}  completed {r.calls['completed']}  failed {r.calls['failed']}"
        + (f"  refused {r.refused} (the bridge was full)" if r.refused else ""),
        f"  at most {r.peak_live_calls} at once",
    ]
    if r.arrivals is not None:
        a = r.arrivals
        lines.append(f"arrivals     {a['count']} {a['process']} at {a['rate']:g}/s over {a['duration_s']:g} s "
                     f"(expected {a['expected']:.1f}, the generator's bounds {a['bounds'][0]}..{a['bounds'][1]})")
    lines += [
        "frames       " + "  ".join(f"{k} {v}" for k, v in r.frames.items()),
        "deadline     misses " + "  ".join(f"{k} {v}" for k, v in r.deadline_misses.items())
        + ("" if r.steady_deadline_misses is None else
           "  (all calls up: " + "  ".join(f"{k} {v}" for k, v in r.steady_deadline_misses.items()) + ")"),
    ]
    for d, v in r.bridge_latency_ms.items():
        lines.append(f"bridge {d:<9} latency ms  {_fmt(v)}")
    lines.append(f"event loop   lag ms      {_fmt(r.event_loop_lag_ms)}")
    if r.steady_loop_lag is not None:
        s = r.steady_loop_lag
        lines.append(f"             all calls up: p99 {s['p99_ms']:.2f} ms, over 5 ms {s['over_5ms_pct']:.1f} % "
                     f"and over 20 ms {s['over_20ms_pct']:.1f} % of {s['ticks']:.0f} ticks")
    if r.gc_pause_ms:
        per_gen = "  ".join(f"gen{g} {v['collections']:.0f}× max {v['max']:.1f} ms" for g, v in r.gc_pause_ms.items())
        total = sum(v["total"] for v in r.gc_pause_ms.values())
        share = f" ({100.0 * total / (1000.0 * r.wall_s):.1f} % of the run)" if r.wall_s else ""
        lines.append(f"gc pauses    {per_gen}, {total:.0f} ms in all{share}")
    lines.append(f"caller turn  latency ms  {_fmt(r.caller_turn_latency_ms)}")
    lines += _human_caller_view(r)
    if r.bridge_cpu_pct is not None:
        per_call = r.bridge_cpu_ms_per_call_second or 0.0
        lines.append(f"bridge cpu   {r.bridge_cpu_pct:.1f} %  ({per_call:.3f} CPU-ms per call-second)")
    if r.rig_cpu_pct is not None:
        rig_note = ": saturated, so the rig may be what limits this run" if r.rig_cpu_pct >= RIG_SATURATED_PCT else ""
        lines.append(f"rig cpu      {r.rig_cpu_pct:.1f} % of its CPUs (callers and stand-in){rig_note}")
    if r.rss_mb is not None:
        lines.append(f"bridge rss   idle {r.rss_mb['idle']:.1f} MB  peak {r.rss_mb['peak']:.1f} MB  "
                     f"({r.rss_mb_per_call:.2f} MB per call)")
    lines.append(f"mos          reported {_fmt(r.mos.get('reported'))}")
    lines.append(f"             expected {_fmt(r.mos.get('expected'))}")
    mae = r.mos.get("mean_abs_error")
    lines.append(f"             mean abs error {mae:.3f}" if mae is not None else "             mean abs error -")
    flagged = r.mos.get("reports_flagged_saturated")
    if flagged:
        lines.append(f"             {flagged} of {r.mos.get('reports')} reports say the bridge's loop lagged "
                     "(bridge_host.loop_lag.saturated): their MOS includes the bridge's own delay")
    return "\n".join(lines)


def _human_caller_view(r: LoadResult) -> list[str]:
    v = r.caller_view
    if v.get("not_measured"):
        return [f"callers saw   not measured: {v['not_measured']}"]
    c = v.get("counts", {})
    lines = [f"callers saw   caller->AI ms {_fmt(v.get('to_ai_ms'))}  "
             f"({c.get('frames_matched', 0)} of {c.get('frames_sent', 0)} frames reached the stand-in)",
             f"              AI->caller ms {_fmt(v.get('to_caller_ms'))}  ({c.get('tags_matched', 0)} tags)",
             f"  steady window caller->AI ms {_fmt(v.get('steady_to_ai_ms'))}",
             f"                AI->caller ms {_fmt(v.get('steady_to_caller_ms'))}",
             f"              AI audio queued at hangup, ms per call {_fmt(v.get('queued_at_hangup_ms'))}"]
    if r.messages:
        lines.append("messages     " + "  ".join(f"{k} {n}" for k, n in r.messages.items()))
    return lines


def _human_find_max(best: int, runs: list[LoadResult]) -> str:
    rows = [f"highest clean call count: {best}"]
    for r in runs:
        p99 = max((v["p99"] for v in r.bridge_latency_ms.values()), default=float("nan"))
        lag = (r.event_loop_lag_ms or {}).get("p99", float("nan"))
        rows.append(f"  {r.options['calls']:>5} calls: misses {sum(r.deadline_misses.values())}, p99 {p99:.2f} ms, "
                    f"loop lag p99 {lag:.1f} ms, failed {r.calls['failed']}, cpu {r.bridge_cpu_pct or 0:.0f} %")
    return "\n".join(rows)
