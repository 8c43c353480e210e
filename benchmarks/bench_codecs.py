"""Quality (PESQ, ITU-T P.862 narrowband MOS-LQO), measured delay and CPU cost of the codec chains.

    python benchmarks/bench_codecs.py [--quick] [--out results.md]

Speech is synthesised offline with espeak-ng and band-limited to 8 kHz by FFT truncation. Every
chain is the full bridge loop: caller mu-law frames -> to_ai -> AI-side payloads -> to_caller ->
caller mu-law frames; the PESQ reference is the 8 kHz linear input. Loss columns drop 20 ms frames
on both legs with independent seeded patterns (random.Random): caller frames (conceal_to_ai, or a
silent frame) and AI payloads (lost_from_ai, or a silent frame).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.codecs import make_transcoder
from bridge.codecs.g711 import ulaw_decode, ulaw_encode
from bridge.codecs.offline import caller_frames, loopback
from bridge.codecs.opus import OpusDecoder, OpusEncoder
from bridge.codecs.resamplers import Downsampler, Upsampler

SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
)
CHAINS = (("pcmu", 24000), ("pcm24k", 24000), ("opus16k", 16000), ("opus16k", 24000), ("opus16k", 32000))
LOSSES = (2.0, 5.0)

I16 = npt.NDArray[np.int16]


def speech_8k(text: str) -> I16:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        with wave.open(str(path)) as w:
            rate = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    n = round(x.size * 8000 / rate)
    spec = np.fft.rfft(x)[: n // 2 + 1]
    y = np.fft.irfft(spec, n) * n / x.size
    out: I16 = np.round(y * 0.5 * 32767 / np.abs(y).max()).astype(np.int16)
    return out


def label(fmt: str, bitrate: int) -> str:
    return f"opus16k {bitrate // 1000}k" if fmt == "opus16k" else fmt


def loss_set(n_frames: int, pct: float, seed: int) -> set[int]:
    rng = random.Random(seed)
    return {i for i in range(n_frames) if rng.random() * 100 < pct}


def measured_delay_ms(out: I16, ref: I16) -> float:
    corr = np.correlate(out[: ref.size].astype(np.float64), ref.astype(np.float64), "full")
    k = int(np.argmax(corr))
    y0, y1, y2 = corr[k - 1], corr[k], corr[k + 1]
    return float(1000.0 * (k - (ref.size - 1) + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)) / 8000)


def quality_table(x: I16) -> str:
    from pesq import pesq

    def score(y: I16) -> float:
        return float(pesq(8000, x.astype(np.float64), y[: x.size].astype(np.float64), "nb"))

    n = x.size // 160 + 1
    head = "| chain | delay measured (ms) | delay reported (ms) | MOS-LQO clean |"
    rule = "|---|---|---|---|"
    for pct in LOSSES:
        head += f" {pct:g}% concealed | {pct:g}% zero fill |"
        rule += "---|---|"
    rows = [head, rule]
    for fmt, bitrate in CHAINS:
        tc = make_transcoder(fmt, bitrate)
        clean = loopback(tc, x)
        reported = tc.delay_to_ai.total_ms + tc.delay_to_caller.total_ms
        measured = measured_delay_ms(clean, x)
        row = f"| {label(fmt, bitrate)} | {measured:.2f} | {reported:.2f} | {score(clean):.2f} |"
        for pct in LOSSES:
            lost_c, lost_a = loss_set(n, pct, 1), loss_set(n, pct, 2)
            for conceal in (True, False):
                y = loopback(make_transcoder(fmt, bitrate), x, lost_c, lost_a, conceal=conceal)
                row += f" {score(y):.2f} |"
        rows.append(row)
    return "\n".join(rows)


def per_frame_us(fn: Callable[[int], object], frames: int) -> float:
    start = time.perf_counter()
    for i in range(frames):
        fn(i)
    return (time.perf_counter() - start) / frames * 1e6


def time_format(fmt: str, bitrate: int, frames_in: list[bytes], frames: int) -> tuple[float, float]:
    tc = make_transcoder(fmt, bitrate)
    payloads: list[bytes] = []
    t_ai = per_frame_us(lambda i: payloads.extend(tc.to_ai(frames_in[i % len(frames_in)])), frames)
    t_caller = per_frame_us(lambda i: tc.to_caller(payloads[i]), frames)
    return t_ai, t_caller


def cost_table(x: I16, frames: int) -> tuple[str, float]:
    ulaw = caller_frames(x)[:64]
    lin8 = [ulaw_decode(f) for f in ulaw]
    up2, up3, down2, down3 = Upsampler(2), Upsampler(3), Downsampler(2), Downsampler(3)
    wide16 = [up2.process(f) for f in lin8]
    wide24 = [up3.process(f) for f in lin8]
    enc, dec = OpusEncoder(24000), OpusDecoder()
    packets = [enc.encode(w) for w in wide16]
    stages = {
        "mu-law decode (160 B)": per_frame_us(lambda i: ulaw_decode(ulaw[i % 64]), frames),
        "mu-law encode (160 samples)": per_frame_us(lambda i: ulaw_encode(lin8[i % 64]), frames),
        "FIR 8->16 kHz": per_frame_us(lambda i: up2.process(lin8[i % 64]), frames),
        "FIR 16->8 kHz": per_frame_us(lambda i: down2.process(wide16[i % 64]), frames),
        "FIR 8->24 kHz": per_frame_us(lambda i: up3.process(lin8[i % 64]), frames),
        "FIR 24->8 kHz": per_frame_us(lambda i: down3.process(wide24[i % 64]), frames),
        "libopus encode 24k (320 samples)": per_frame_us(lambda i: enc.encode(wide16[i % 64]), frames),
        "libopus decode (320 samples)": per_frame_us(lambda i: dec.decode(packets[i % 64]), frames),
    }
    rows = ["| stage | µs per 20 ms frame |", "|---|---|"]
    rows += [f"| {name} | {us:.1f} |" for name, us in stages.items()]
    rows += ["", "| format | to_ai µs/frame | to_caller µs/frame | both |", "|---|---|---|---|"]
    both_opus = 0.0
    frames_in = caller_frames(x)
    for fmt, bitrate in (("pcmu", 24000), ("pcm24k", 24000), ("opus16k", 24000)):
        t_ai, t_caller = time_format(fmt, bitrate, frames_in, frames)
        rows.append(f"| {label(fmt, bitrate)} | {t_ai:.1f} | {t_caller:.1f} | {t_ai + t_caller:.1f} |")
        if fmt == "opus16k":
            both_opus = t_ai + t_caller
    libopus = stages["libopus encode 24k (320 samples)"] + stages["libopus decode (320 samples)"]
    ratio = both_opus / libopus
    rows += ["", f"opus16k whole chain / libopus encode+decode alone = {both_opus:.1f} / {libopus:.1f} µs "
             f"= **{ratio:.2f}** (goal <= 1.5)"]
    return "\n".join(rows), ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two sentences and 500 frames for cost")
    parser.add_argument("--out", help="also write the Markdown tables to this file")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found: install the Debian package espeak-ng", file=sys.stderr)
        return 2
    text = " ".join(SENTENCES[:2] if args.quick else SENTENCES)
    x = speech_8k(text)
    quality = quality_table(x)
    cost, _ratio = cost_table(x, 500 if args.quick else 2000)
    report = (
        "### Codec chains: PESQ narrowband MOS-LQO (ITU-T P.862), "
        f"{x.size / 8000:.1f} s of espeak-ng speech\n\n"
        "Full bridge loop (caller mu-law -> to_ai -> AI payloads -> to_caller -> caller mu-law); loss drops "
        "20 ms frames on both legs, independent seeded patterns.\n\n"
        f"{quality}\n\n### Cost (Python {sys.version.split()[0]}, numpy {np.__version__})\n\n{cost}\n"
    )
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
