"""``mosbridge demo``: the bridge, the Realtime stand-in and simulated callers on loopback, no
accounts needed (the logic: bridge/stand_ins/demo.py)."""

from __future__ import annotations

import argparse

import uvloop

from bridge.cli.arg_types import non_negative
from bridge.stand_ins.demo import TENANTS, DemoOptions, run_demo


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = "; ".join(f"{t.name}: loss {t.loss_pct:g} %, jitter {t.jitter_ms:g} ms" for t in TENANTS)
    p = sub.add_parser(
        "demo",
        help="try it without accounts: the bridge, a Realtime stand-in and simulated callers on loopback",
        description="Start the bridge with the local Realtime stand-in as its AI, call it with simulated "
        f"Twilio callers in waves for a few minutes ({tenants}; the last is bad enough to fire the MOS "
        "alert), print the dashboard's address, and keep serving it until Ctrl-C. Reports stay in the store.",
    )
    p.add_argument("--duration", type=non_negative, default=120.0, help="seconds of calls (default 120)")
    p.add_argument("--call-seconds", type=non_negative, default=20.0, help="length of each call (default 20)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--database-url", default="sqlite:///mosbridge.db",
                   help="report store (default sqlite:///mosbridge.db, the one `serve` uses)")
    p.add_argument("--exit", action="store_true", help="stop once the calls are done instead of serving on")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    if args.call_seconds < 4:
        args.parser.error("--call-seconds must be at least 4")
    opts = DemoOptions(duration_s=max(args.duration, args.call_seconds), call_s=args.call_seconds, host=args.host,
                       port=args.port, database_url=args.database_url, keep_serving=not args.exit)
    summary = uvloop.run(run_demo(opts, say=lambda line: print(line, flush=True)))
    return 0 if summary and all(t.calls for t in summary) else 1


