"""`mosbridge transcode`: run a WAV file through exactly one direction of the bridge's codec chain.

to-caller: AI-side audio (16 kHz for opus16k, Opus-encoded first as the AI would send it; 24 kHz
for pcm24k; 8 kHz for pcmu) -> the 8 kHz mu-law frames the caller gets, written as 8 kHz PCM16.
to-ai: caller audio at 8 kHz -> mu-law frames -> what the AI side decodes, written at the AI rate.
--loss-pct drops 20 ms frames at random (seeded): AI payloads for to-caller, caller frames for
to-ai; the transcoder conceals them as it would in a call.
"""

from __future__ import annotations

import argparse
import random
import sys
import wave

import numpy as np

from bridge.codecs import FORMATS, CodecError, make_transcoder
from bridge.codecs import offline as sim
from bridge.codecs.g711 import Int16Array

AI_RATE = {"opus16k": 16000, "pcm24k": 24000, "pcmu": 8000}
FRAME_MS = 20


class UsageError(Exception):
    """Bad input file or arguments; reported on one line with exit code 2."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "transcode",
        help="run a WAV through one direction of the bridge's codec chain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN.wav", help="16-bit mono WAV at the chain's input rate")
    p.add_argument("output", metavar="OUT.wav", help="16-bit mono WAV written at the chain's output rate")
    p.add_argument("--format", required=True, choices=FORMATS, help="AI-side audio format")
    p.add_argument("--direction", required=True, choices=["to-caller", "to-ai"])
    p.add_argument("--bitrate", type=int, default=24000, help="Opus bitrate in bit/s (default 24000)")
    p.add_argument("--loss-pct", type=float, default=0.0, help="random 20 ms frame loss in percent")
    p.add_argument("--seed", type=int, default=1, help="seed of the loss pattern (default 1)")
    p.set_defaults(run=run, parser=p)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (UsageError, CodecError) as exc:
        print(f"mosbridge transcode: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.loss_pct <= 100.0:
        raise UsageError(f"--loss-pct must be within 0..100, got {args.loss_pct:g}")
    fmt: str = args.format
    to_caller = args.direction == "to-caller"
    in_rate, out_rate = (AI_RATE[fmt], 8000) if to_caller else (8000, AI_RATE[fmt])
    samples = read_wav(args.input, in_rate)
    tc = make_transcoder(fmt, args.bitrate)
    frames = -(-samples.size * 1000 // (in_rate * FRAME_MS))
    rng = random.Random(args.seed)
    lost = {i for i in range(frames) if rng.random() * 100 < args.loss_pct}
    if to_caller:
        out = sim.to_caller(fmt, samples, args.bitrate, lost)
        codec_ms = tc.delay_to_ai.codec_ms
        delay = tc.delay_to_caller.resample_ms + codec_ms
    else:
        out = sim.to_ai(fmt, samples, args.bitrate, lost)
        delay = tc.delay_to_ai.total_ms
    write_wav(args.output, out, out_rate)
    print(f"chain: {describe(fmt, to_caller, args.bitrate)}; lost {len(lost)}/{frames} frames")
    print(f"algorithmic delay: {delay:.2f} ms")
    return 0


def describe(fmt: str, to_caller: bool, bitrate: int) -> str:
    opus = f"Opus {bitrate // 1000} kbit/s"
    if to_caller:
        return {
            "opus16k": f"PCM 16 kHz -> {opus} encode (as the AI) -> Opus decode/PLC -> FIR 16->8 kHz "
            "-> mu-law 160 B frames",
            "pcm24k": "PCM16LE 24 kHz -> FIR 24->8 kHz -> mu-law 160 B frames",
            "pcmu": "mu-law 8 kHz -> 160 B frames (pass-through)",
        }[fmt]
    return {
        "opus16k": f"PCM 8 kHz -> mu-law 160 B frames -> FIR 8->16 kHz -> {opus} encode -> Opus decode (AI)",
        "pcm24k": "PCM 8 kHz -> mu-law 160 B frames -> FIR 8->24 kHz -> PCM16LE 24 kHz",
        "pcmu": "PCM 8 kHz -> mu-law 160 B frames (pass-through) -> mu-law decode (AI)",
    }[fmt]


def read_wav(path: str, rate: int) -> Int16Array:
    try:
        with wave.open(path, "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                shape = f"{w.getnchannels()} ch x {8 * w.getsampwidth()} bit"
                raise UsageError(f"{path}: need 16-bit mono, got {shape}")
            if w.getframerate() != rate:
                raise UsageError(f"{path}: this chain expects {rate} Hz input, got {w.getframerate()} Hz")
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def write_wav(path: str, samples: Int16Array, rate: int) -> None:
    try:
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.astype("<i2").tobytes())
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc}") from exc
