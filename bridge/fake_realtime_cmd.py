"""``mosbridge fake-realtime``: a local OpenAI Realtime (GA, WebSocket) stand-in.

Serves ws://HOST:PORT/v1/realtime?model=... with server VAD on the caller's audio and a synthetic
speech-like answer streamed ``--speed`` times faster than real time. Runs until SIGINT/SIGTERM.
Point the bridge at it with its Realtime URL set to ws://HOST:PORT/v1/realtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bridge.arg_types import positive, positive_int
from bridge.fake_realtime import FakeRealtimeConfig, FakeRealtimeServer


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fake-realtime",
        help="run a local OpenAI Realtime (GA) stand-in for tests and load runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port, 0 = any free port (default 8765)")
    p.add_argument("--speed", type=positive, default=4.0,
                   help="how many times faster than real time answers stream (default 4)")
    p.add_argument("--response-ms", type=positive_int, default=2000,
                   help="duration of each spoken answer in ms (default 2000)")
    p.add_argument("--api-key", default=None,
                   help="accept only this bearer key (default: any non-empty key)")
    p.add_argument("--vad-threshold-dbfs", type=float, default=-40.0,
                   help="server-VAD speech threshold on 20 ms RMS, dBFS (default -40)")
    p.add_argument("--seed", type=int, default=0, help="seed for delta sizes (default 0)")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    config = FakeRealtimeConfig(api_key=args.api_key, speed=args.speed, response_ms=args.response_ms,
                                threshold_dbfs=args.vad_threshold_dbfs, seed=args.seed)
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"fake-realtime: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: FakeRealtimeConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    server = FakeRealtimeServer(config)
    await server.start(host, port)
    print(f"fake-realtime listening on ws://{host}:{server.port}/v1/realtime", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
