"""The call core's cost per caller frame, among many calls, as a ratio to a same-run baseline.

Each of K cores (``pcmu``, AI leg up) takes one Twilio ``media`` message in turn, as a loop serving
K calls does, and the frame goes through parse, meters, the append's text, ``record_sent`` and
``get_timer``: what ``bridge/core`` does per frame in the live bridge and in replay. Baseline: what
the bare forwarder (``benchmarks/forwarder.py``) does per frame, ``orjson.loads`` and the append
built as text. Best of five passes.

Run: ``.venv/bin/python benchmarks/bench_core.py [--calls 1 100 300] [--frames 1500]
[--source DIR]``; ``--source`` measures another checkout (e.g. a worktree of the commit before a
change) with this script, so both sides run the same measurement.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent


def forwarder_us(messages: list[str]) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for m in messages:
            d = orjson.loads(m)
            _ = '{"type":"input_audio_buffer.append","audio":"' + d["media"]["payload"] + '"}'
        best = min(best, time.perf_counter() - t0)
    return best / len(messages) * 1e6


def core_us(calls: int, frames: int) -> tuple[float, list[str]]:
    """µs per frame of K interleaved cores, best of five fresh runs; and the messages of call 0."""
    call = importlib.import_module("bridge.core.call")
    config = importlib.import_module("bridge.core.config")
    inputs = importlib.import_module("bridge.core.inputs")
    caller = importlib.import_module("bridge.stand_ins.twilio_caller")
    payload = base64.b64encode(bytes(range(160))).decode()
    rows = [[caller.media_message(f"MZ{c}", i + 2, i + 1, i * 20, payload) for c in range(calls)]
            for i in range(frames)]
    best = float("inf")
    for _ in range(5):
        cores: list[Any] = []
        for c in range(calls):
            core = call.CallCore(config.CallConfig(ai_format="pcmu"), now=0.0)
            inputs.apply(core, inputs.TwilioIn(caller.CONNECTED), 0.0)
            inputs.apply(core, inputs.TwilioIn(caller.start_message(f"MZ{c}", f"CA{c}", {"tenant": "t"})), 0.001)
            inputs.apply(core, inputs.AiConnected(), 0.002)
            core.data_to_send()
            while core.next_event() is not None:
                pass
            cores.append(core)
        t0 = time.perf_counter()
        for i, row in enumerate(rows):
            now = 0.01 + i * 0.02
            for core, text in zip(cores, row, strict=True):
                inputs.apply(core, inputs.TwilioIn(text), now)
                core.record_sent(core.data_to_send(), now + 0.0001)
                core.get_timer()
        best = min(best, time.perf_counter() - t0)
        sent = sum(core.latency[next(iter(core.latency))].summary().count for core in cores)
        if sent != calls * frames:
            raise RuntimeError(f"{sent} frames reached the AI of {calls * frames}: the rig is wrong")
    return best / (calls * frames) * 1e6, [r[0] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[1, 100, 300])
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--source", type=Path, default=ROOT, help="the checkout whose bridge/ is measured")
    args = ap.parse_args()
    sys.path.insert(0, str(args.source.resolve()))
    print(f"python {platform.python_version()} on {platform.machine()}, {args.frames} frames per call, "
          f"source {args.source}")
    for calls in args.calls:
        us, messages = core_us(calls, args.frames)
        base = forwarder_us(messages)
        print(f"{calls:4d} calls  core {us:6.2f} us/frame   forwarder's work {base:5.2f} us/frame   "
              f"ratio {us / base:5.1f}x")


if __name__ == "__main__":
    main()
