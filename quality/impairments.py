"""Codec impairment factors for the E-model: Ie and Bpl (ITU-T G.113), with their sources.

Names line up with the bridge's AI-side formats (``pcmu``, ``pcm24k``, ``opus16k``) and with
``mosbridge mos --list-codecs``. Tandem rule (G.113 §8 / G.107 §7.5 planning practice): the
equipment impairments of codecs in tandem add, Ie,total = sum(Ie_i); loss is measured on one
leg, so Bpl is that of the codec decoding the lossy leg (for the caller's ear: G.711 at Twilio's
edge, where carriers and handsets conceal loss, hence ``g711-plc`` by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from quality.emodel import mos_to_r


@dataclass(frozen=True)
class Codec:
    """One codec's E-model figures; ``ie_wb``/``bpl_wb`` are on the G.107.1 (0..129) scale."""

    name: str
    description: str
    ie: float
    bpl: float
    frame_ms: float  # packetization: one frame of delay at the sender
    lookahead_ms: float  # algorithmic delay beyond the frame
    source: str
    ie_wb: float | None = None
    bpl_wb: float | None = None
    standard: bool = True  # False: not an ITU-T value; ``source`` says how it was derived

    @property
    def delay_ms(self) -> float:
        return self.frame_ms + self.lookahead_ms


_G113_NOTE = "ITU-T G.113 Appendix I, Tables I.1 (Ie) and I.3 (Bpl, random loss)"
_DERIVED = ("not an ITU-T value: derived by the ITU-T P.834 method from PESQ, "
            "benchmarks/derive_impairments.py")
# Opus (SILK wideband, libopus VOIP mode): 20 ms frames plus 6.5 ms encoder lookahead at 16 kHz.
_OPUS_LOOKAHEAD_MS = 6.5

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("g711", "G.711 mu-law/A-law 64 kbit/s, no packet-loss concealment", ie=0.0, bpl=4.3,
              frame_ms=20.0, lookahead_ms=0.0, source=_G113_NOTE),
        Codec("g711-plc", "G.711 with packet-loss concealment (G.711 Appendix I)", ie=0.0, bpl=25.1,
              frame_ms=20.0, lookahead_ms=0.0, source=_G113_NOTE),
        Codec("g729a", "G.729A + VAD 8 kbit/s (reference row for comparison)", ie=11.0, bpl=19.0,
              frame_ms=10.0, lookahead_ms=5.0, source=_G113_NOTE),
        Codec("pcm24k", "PCM16 24 kHz to the AI side (the bridge's 8 <-> 24 kHz resampling)", ie=0.0,
              bpl=4.3, frame_ms=0.0, lookahead_ms=0.0, standard=False,
              source="linear PCM; measured Ie 0.05 (PESQ, benchmarks/derive_impairments.py), taken as 0"),
        Codec("opus16k-16", "Opus 16 kHz at 16 kbit/s, decoder PLC", ie=10.1, bpl=12.6, ie_wb=42.1,
              bpl_wb=6.2, frame_ms=20.0, lookahead_ms=_OPUS_LOOKAHEAD_MS, standard=False, source=_DERIVED),
        Codec("opus16k", "Opus 16 kHz at 24 kbit/s (the bridge's default), decoder PLC", ie=3.8, bpl=11.1,
              ie_wb=25.9, bpl_wb=5.2, frame_ms=20.0, lookahead_ms=_OPUS_LOOKAHEAD_MS, standard=False,
              source=_DERIVED),
        Codec("opus16k-32", "Opus 16 kHz at 32 kbit/s, decoder PLC", ie=2.9, bpl=10.9, ie_wb=17.7,
              bpl_wb=4.7, frame_ms=20.0, lookahead_ms=_OPUS_LOOKAHEAD_MS, standard=False, source=_DERIVED),
    )
}


# The bridge's AI-side format names resolve too: ``pcmu`` pass-through is G.711 end to end.
CODECS["pcmu"] = replace(CODECS["g711"], name="pcmu",
                         description="mu-law pass-through to the AI side: G.711 end to end (same as g711)")


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(sorted(CODECS))}") from None


@dataclass(frozen=True)
class CodecChain:
    """Codecs a direction passes through, in order; Ie adds, Bpl is the last (lossy) leg's."""

    codecs: tuple[Codec, ...]

    @classmethod
    def of(cls, *names: str) -> CodecChain:
        if not names:
            raise ValueError("a codec chain needs at least one codec")
        return cls(tuple(get_codec(n) for n in names))

    @property
    def name(self) -> str:
        return " -> ".join(c.name for c in self.codecs)

    @property
    def ie(self) -> float:
        return math.fsum(c.ie for c in self.codecs)

    @property
    def bpl(self) -> float:
        return self.codecs[-1].bpl

    @property
    def delay_ms(self) -> float:
        return math.fsum(c.delay_ms for c in self.codecs)

    @property
    def ie_wb(self) -> float | None:
        values = [c.ie_wb for c in self.codecs]
        return None if any(v is None for v in values) else math.fsum(v for v in values if v is not None)

    @property
    def bpl_wb(self) -> float | None:
        return self.codecs[-1].bpl_wb


def ie_from_mos_lqo(reference_mos: float, codec_mos: float) -> float:
    """Ie of a codec from instrumental MOS-LQO scores, by the method of ITU-T P.834.

    Both scores become R through the G.107 Appendix I inverse; the reference condition (G.711,
    Ie = 0 by definition) anchors the scale, so Ie = R(reference) - R(codec).
    """
    return mos_to_r(reference_mos) - mos_to_r(codec_mos)


def bpl_from_ie_eff(ie: float, ppl: float, ie_eff: float, burst_r: float = 1.0) -> float:
    """Solve G.107 §7.5 Ie,eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl) for Bpl."""
    if not ie_eff > ie:
        raise ValueError("Ie,eff must exceed Ie when there is loss")
    return ppl * (95.0 - ie) / (ie_eff - ie) - ppl / burst_r
