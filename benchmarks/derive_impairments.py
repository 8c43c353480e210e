"""Derive E-model Ie/Bpl (and Ie,wb/Bpl,wb) for the bridge's Opus and PCM chains from PESQ.

No ITU-T table gives Opus values, so ``quality/impairments.py`` carries values derived here by
the method of ITU-T P.834 (and, for wideband, in the manner of P.834.1):
- Ie = R(anchor) - R(chain), both R from PESQ MOS-LQO via the G.107 Appendix I inverse; the
  anchor is the AI sending G.711 (pcmu pass-through), Ie = 0 by definition.
- Bpl solves G.107 §7.5 for the Ie,eff measured at 2 % and 5 % random loss (mean of the two),
  losses on the AI leg concealed by the Opus decoder's PLC.
- Ie,wb = 1.29 x (R(reference) - R(codec)) from wideband PESQ (P.862.2) of Opus at 16 kHz
  against the uncoded 16 kHz speech (the reference's MOS-LQO clipped at 4.5, so it has R = 100);
  Bpl,wb likewise with 129 in place of 95.
Speech is espeak-ng (made at run time), which is synthetic: treat the figures as provisional.
Run: ``.venv/bin/python benchmarks/derive_impairments.py`` (about a minute).
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pesq import pesq

from bridge.codecs.g711 import Int16Array
from bridge.codecs.offline import to_caller
from bridge.codecs.opus import FRAME_SAMPLES_16K, OpusDecoder, OpusEncoder
from quality.emodel import RO_WB, WB_SCALE, mos_to_r
from quality.impairments import bpl_from_ie_eff, ie_from_mos_lqo

TEXT = ("The quick brown fox jumps over the lazy dog. A voice agent answers the phone and books an "
        "appointment for next Tuesday at three. Please hold while I check the schedule for you.")
LOSSES = (2.0, 5.0)
SEEDS = range(6)


def speech(rate: int, workdir: Path) -> Int16Array:
    raw, out = workdir / "s.wav", workdir / f"s{rate}.wav"
    if not raw.exists():
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), TEXT], check=True)
    # -D: no dither, so every run scores the same samples
    subprocess.run(["sox", "-D", str(raw), "-r", str(rate), "-b", "16", str(out)], check=True)
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def lost_frames(n: int, pct: float, seed: int) -> set[int]:
    rng = random.Random(seed)
    return {i for i in range(n) if rng.random() < pct / 100}


def opus_round_trip(x16: Int16Array, bitrate: int, lost: set[int]) -> Int16Array:
    n = -(-x16.size // FRAME_SAMPLES_16K)
    pad = np.zeros(n * FRAME_SAMPLES_16K, dtype=np.int16)
    pad[: x16.size] = x16
    enc, dec = OpusEncoder(bitrate), OpusDecoder()
    out = []
    for i in range(n):
        packet = enc.encode(pad[i * FRAME_SAMPLES_16K : (i + 1) * FRAME_SAMPLES_16K])
        out.append(dec.conceal() if i in lost else dec.decode(packet))
    return np.concatenate(out)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x8, x16, x24 = (speech(r, work) for r in (8000, 16000, 24000))

    def score(ref: Int16Array, rate: int, mode: str) -> Callable[[Int16Array], float]:
        def f(y: Int16Array) -> float:
            n = min(ref.size, y.size)
            return float(pesq(rate, ref[:n].astype(float), y[:n].astype(float), mode))
        return f

    nb, wb = score(x8, 8000, "nb"), score(x16, 16000, "wb")
    anchor = nb(to_caller("pcmu", x8))
    print(f"anchor (AI sends G.711)  PESQ-NB {anchor:.3f}  Ie 0 by definition")
    pcm = nb(to_caller("pcm24k", x24))
    print(f"pcm24k                   PESQ-NB {pcm:.3f}  Ie {ie_from_mos_lqo(anchor, pcm):.2f}")
    frames = -(-x16.size // FRAME_SAMPLES_16K)
    r_ref_wb = mos_to_r(min(4.5, wb(x16)))
    print("| chain | PESQ-NB | Ie | Bpl | PESQ-WB | Ie,wb | Bpl,wb |")
    print("|---|---|---|---|---|---|---|")
    for kbps in (16, 24, 32):
        br = kbps * 1000
        m0 = nb(to_caller("opus16k", x16, br))
        ie = ie_from_mos_lqo(anchor, m0)
        bpls, bpls_wb = [], []
        w0 = wb(opus_round_trip(x16, br, set()))
        ie_wb = WB_SCALE * (r_ref_wb - mos_to_r(w0))
        for pct in LOSSES:
            m = float(np.mean([nb(to_caller("opus16k", x16, br, lost=lost_frames(frames, pct, s)))
                               for s in SEEDS]))
            bpls.append(bpl_from_ie_eff(ie, pct, ie_from_mos_lqo(anchor, m)))
            w = float(np.mean([wb(opus_round_trip(x16, br, lost_frames(frames, pct, s))) for s in SEEDS]))
            ie_eff_wb = WB_SCALE * (r_ref_wb - mos_to_r(w))
            bpls_wb.append(pct * (RO_WB - ie_wb) / (ie_eff_wb - ie_wb) - pct)
        print(f"| opus16k @ {kbps} kbit/s | {m0:.3f} | {ie:.1f} | {np.mean(bpls):.1f} | {w0:.3f} | "
              f"{ie_wb:.1f} | {np.mean(bpls_wb):.1f} |")


if __name__ == "__main__":
    main()
