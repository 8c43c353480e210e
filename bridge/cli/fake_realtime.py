"""``mosbridge fake-realtime``: a local OpenAI Realtime (GA) stand-in, WebSocket and WebRTC.

Serves ws://HOST:PORT/v1/realtime?model=... with server VAD on the caller's audio and a synthetic
speech-like answer streamed ``--speed`` times faster than real time, and (unless --no-webrtc)
http://HOST:WEBRTC_PORT/v1/realtime/calls, the WebRTC interface: POST an SDP offer (multipart
``sdp`` + ``session``, or application/sdp), get the answer; Opus on the media track, the GA events
on the ``oai-events`` data channel. WebRTC media uses loopback ICE candidates only. With --echo
every answer is the caller's own last utterance as the stand-in received it. Runs until
SIGINT/SIGTERM. Point the bridge at it with its Realtime URL set to ws://HOST:PORT/v1/realtime
and its Realtime calls URL to http://HOST:WEBRTC_PORT/v1/realtime/calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import uvloop

from bridge.cli.arg_types import positive, positive_int
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from bridge.stand_ins.stamp_log import StampLog


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fake-realtime",
        help="run a local OpenAI Realtime (GA) stand-in for tests and load runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="WebSocket TCP port, 0 = any free port (default 8765)")
    p.add_argument("--webrtc-port", type=int, default=8766,
                   help="HTTP port of POST /v1/realtime/calls, 0 = any free port (default 8766)")
    p.add_argument("--no-webrtc", action="store_true", help="serve the WebSocket interface only")
    p.add_argument("--speed", type=positive, default=4.0,
                   help="how many times faster than real time answers are generated (default 4)")
    p.add_argument("--response-ms", type=positive_int, default=2000,
                   help="duration of each spoken answer in ms (default 2000)")
    p.add_argument("--echo", action="store_true",
                   help="answer with the caller's own last utterance instead of synthetic speech")
    p.add_argument("--idle-audio", choices=("none", "silence"), default="none",
                   help="what the WebRTC track sends between answers (default none)")
    p.add_argument("--opus-bitrate", type=positive_int, default=32000,
                   help="bitrate of the stand-in's Opus encoder on WebRTC, b/s (default 32000)")
    p.add_argument("--encode-once", action="store_true",
                   help="WebRTC: encode each distinct 20 ms of answer audio once and send the same Opus "
                        "packet on every call (load runs: saves the stand-in's CPU)")
    p.add_argument("--api-key", default=None,
                   help="accept only this bearer key (default: any non-empty key)")
    p.add_argument("--vad-threshold-dbfs", type=float, default=-40.0,
                   help="server-VAD speech threshold on 20 ms RMS, dBFS (default -40)")
    p.add_argument("--seed", type=int, default=0, help="seed for delta sizes (default 0)")
    p.add_argument("--stamps", metavar="FILE", type=Path, default=None,
                   help="load runs: stamp tagged caller frames and tag and stamp the answers (pcmu only); "
                        "append one JSON line per session to FILE when it ends")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    config = FakeRealtimeConfig(api_key=args.api_key, speed=args.speed, response_ms=args.response_ms,
                                threshold_dbfs=args.vad_threshold_dbfs, seed=args.seed, echo=args.echo)
    webrtc_port = None if args.no_webrtc else args.webrtc_port
    try:
        uvloop.run(_serve(config, args.host, args.port, webrtc_port, args.idle_audio, args.opus_bitrate,
                          args.encode_once, args.stamps))
    except (OSError, ValueError) as exc:
        print(f"fake-realtime: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: FakeRealtimeConfig, host: str, port: int, webrtc_port: int | None,
                 idle_audio: str, opus_bitrate: int, encode_once: bool, stamps: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    server = FakeRealtimeServer(config, StampLog(stamps, time.monotonic) if stamps is not None else None)
    await server.start(host, port)
    print(f"fake-realtime listening on ws://{host}:{server.port}/v1/realtime", flush=True)
    rtc = None
    try:
        if webrtc_port is not None:
            from bridge.stand_ins.realtime_webrtc import CALLS_PATH, FakeRealtimeWebRtcServer

            rtc = FakeRealtimeWebRtcServer(config, idle_audio="silence" if idle_audio == "silence" else "none",
                                           opus_bitrate=opus_bitrate, encode_once=encode_once)
            await rtc.start(host, webrtc_port)
            print(f"fake-realtime WebRTC calls at http://{host}:{rtc.port}{CALLS_PATH}", flush=True)
        await stop.wait()
    finally:
        if rtc is not None:
            await rtc.close()
        await server.close()
