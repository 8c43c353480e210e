"""Quality assessment and per-call reports: R, MOS, band and the dominant impairment.

:func:`assess` turns one direction's inputs into an E-model score and says *why* it is what it
is. Contributions are attributed in a fixed order, each as the R points it costs with the
earlier ones already removed: jitter (buffer delay + late discards), then network loss, then
delay, then codec. The largest names the dominant impairment; below 1 R point, there is none.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from quality.bands import Band, band
from quality.emodel import EModelParams, effective_equipment_impairment, r_factor, r_factor_wideband
from quality.impairments import CodecChain
from quality.latency import LatencySummary
from quality.meter import DirectionFigures
from quality.simplified import simplified_r


class Model(enum.Enum):
    G107 = "g107"
    G107_1 = "g107.1"  # wideband, mapped to the narrowband MOS scale
    SIMPLIFIED = "simplified"


class Impairment(enum.Enum):
    NONE = "none"
    JITTER = "jitter"
    LOSS = "loss"
    DELAY = "delay"
    CODEC = "codec"


DOMINANCE_FLOOR_R = 1.0  # below this many R points nothing is worth naming
# 2: loss on the media clock, jitter as the mean of J (``jitter_max_ms`` added), quantile playout
# buffer, G.711 edge with PLC by default. Reports without the field are version 1.
REPORT_VERSION = 2


@dataclass(frozen=True)
class QualityInput:
    """One direction's E-model inputs.

    ``delay_ms`` is the mouth-to-ear delay without the jitter buffer (it sets T = Ta and
    Tr = 2 T); ``buffer_delay_ms`` and ``late_pct`` are what jitter costs through the playout
    buffer; ``loss_pct`` and ``burst_r`` are network loss on the last leg, concealed by the last
    codec. ``upstream_loss_pct`` is loss of the first codec's packets before that (the AI's RTP
    on the WebRTC leg), concealed by the first codec's own PLC: it raises that codec's Ie to its
    Ie,eff (G.107 §7.5 with its Bpl), which the chain then adds as tandem codecs add (G.113).
    ``jitter_ms`` is used by the simplified model only, which takes jitter directly.
    """

    delay_ms: float
    chain: CodecChain
    loss_pct: float = 0.0
    burst_r: float = 1.0
    buffer_delay_ms: float = 0.0
    late_pct: float = 0.0
    jitter_ms: float = 0.0
    upstream_loss_pct: float = 0.0


@dataclass(frozen=True)
class Assessment:
    model: Model
    r: float
    mos: float
    band: Band
    dominant: Impairment
    contributions: dict[str, float]
    impairments: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "r": self.r,
            "mos": self.mos,
            "band": self.band.value,
            "dominant_impairment": self.dominant.value,
            "contributions": self.contributions,
            "impairments": self.impairments,
        }


def _score(q: QualityInput, model: Model, params: EModelParams) -> tuple[float, float, dict[str, float]]:
    if model is Model.SIMPLIFIED:
        s = simplified_r(q.delay_ms, q.jitter_ms, min(100.0, q.loss_pct + q.upstream_loss_pct))
        return s.r, s.mos, {"effective_latency_ms": s.effective_latency_ms,
                            "latency": s.latency_term, "loss": s.loss_term}
    ppl = min(100.0, q.loss_pct + q.late_pct)
    first = q.chain.codecs[0]
    p = replace(params.with_delay(q.delay_ms + q.buffer_delay_ms), ppl=ppl,
                burst_r=min(8.0, max(1.0, q.burst_r)),
                ie=q.chain.ie + _upstream_ie(first.ie, first.bpl, q.upstream_loss_pct, 95.0), bpl=q.chain.bpl)
    if model is Model.G107_1:
        ie_wb, bpl_wb = q.chain.ie_wb, q.chain.bpl_wb
        if ie_wb is None or bpl_wb is None or first.ie_wb is None or first.bpl_wb is None:
            raise ValueError(f"no wideband (G.107.1) figures for codec chain {q.chain.name}")
        res = r_factor_wideband(p, ie_wb + _upstream_ie(first.ie_wb, first.bpl_wb, q.upstream_loss_pct, 129.0),
                                bpl_wb)
    else:
        res = r_factor(p)
    return res.r, res.mos, res.impairments()


def _upstream_ie(ie: float, bpl: float, loss_pct: float, ceiling: float) -> float:
    """What upstream loss adds to a codec's Ie: its Ie,eff at that loss, random (BurstR 1), less Ie."""
    return effective_equipment_impairment(ie, bpl, min(100.0, loss_pct), 1.0, ceiling) - ie


def assess(q: QualityInput, model: Model = Model.G107, params: EModelParams | None = None) -> Assessment:
    """Score one direction and attribute the R lost to jitter, loss, delay and codec."""
    base = params if params is not None else EModelParams()
    r, mos, impairments = _score(q, model, base)
    steps = [
        (Impairment.JITTER, replace(q, buffer_delay_ms=0.0, late_pct=0.0, jitter_ms=0.0)),
        (Impairment.LOSS, replace(q, buffer_delay_ms=0.0, late_pct=0.0, jitter_ms=0.0, loss_pct=0.0,
                                  upstream_loss_pct=0.0)),
        (Impairment.DELAY, replace(q, buffer_delay_ms=0.0, late_pct=0.0, jitter_ms=0.0, loss_pct=0.0,
                                   upstream_loss_pct=0.0, delay_ms=0.0)),
    ]
    contributions: dict[str, float] = {}
    prev_r = r
    for name, stripped in steps:
        r_wo, _, _ = _score(stripped, model, base)
        contributions[name.value] = max(0.0, r_wo - prev_r)
        prev_r = r_wo
    if model is Model.SIMPLIFIED:
        codec = 0.0  # the simplified model has a fixed 10 ms codec allowance, counted as delay
    elif model is Model.G107_1:
        codec = q.chain.ie_wb or 0.0
    else:
        codec = q.chain.ie
    contributions[Impairment.CODEC.value] = codec
    worst = max(contributions, key=lambda k: contributions[k])
    dominant = Impairment(worst) if contributions[worst] >= DOMINANCE_FLOOR_R else Impairment.NONE
    return Assessment(model=model, r=r, mos=mos, band=band(mos), dominant=dominant,
                      contributions=contributions, impairments=impairments)


def direction_input(figures: DirectionFigures, delay_ms: float, chain: CodecChain) -> QualityInput:
    """E-model inputs from measured figures; unknown jitter counts as none (and is reported so)."""
    return QualityInput(
        delay_ms=delay_ms,
        chain=chain,
        loss_pct=figures.loss_pct,
        burst_r=figures.burst_r,
        buffer_delay_ms=figures.buffer_delay_ms or 0.0,
        late_pct=figures.late_pct or 0.0,
        jitter_ms=figures.jitter_ms or 0.0,
    )


@dataclass(frozen=True)
class DirectionReport:
    """One direction of a call: ``inbound`` is caller -> AI, ``outbound`` is AI -> caller."""

    direction: str
    figures: DirectionFigures
    delay_ms: float
    codec_chain: str
    assessment: Assessment
    bridge_latency: LatencySummary | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self.figures)
        d.update(
            direction=self.direction,
            delay_ms=self.delay_ms,
            codec_chain=self.codec_chain,
            bridge_latency_ms=None if self.bridge_latency is None else {
                "p50": self.bridge_latency.p50_ms, "p95": self.bridge_latency.p95_ms,
                "p99": self.bridge_latency.p99_ms, "max": self.bridge_latency.max_ms,
            },
            **self.assessment.to_dict(),
        )
        return d


@dataclass(frozen=True)
class IntervalScore:
    """The caller's listening MOS over one stretch of the call, and what cost it most."""

    start_s: float
    end_s: float
    mos: float
    r: float
    loss_pct: float
    jitter_ms: float = 0.0
    dominant_impairment: str = Impairment.NONE.value


@dataclass(frozen=True)
class CallReport:
    """The per-call report. The call's MOS is the caller's listening direction (``outbound``):
    the phone user is the one whose experience the score stands for."""

    call_sid: str
    tenant: str | None
    inbound: DirectionReport
    outbound: DirectionReport
    duration_s: float
    tags: dict[str, str] = field(default_factory=dict)
    intervals: tuple[IntervalScore, ...] = ()
    assumptions: dict[str, float | str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def mos(self) -> float:
        return self.outbound.assessment.mos

    @property
    def r(self) -> float:
        return self.outbound.assessment.r

    @property
    def band(self) -> Band:
        return self.outbound.assessment.band

    @property
    def dominant_impairment(self) -> Impairment:
        return self.outbound.assessment.dominant

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            "call_sid": self.call_sid,
            "tenant": self.tenant,
            "mos": self.mos,
            "r": self.r,
            "band": self.band.value,
            "dominant_impairment": self.dominant_impairment.value,
            "duration_s": self.duration_s,
            "inbound": self.inbound.to_dict(),
            "outbound": self.outbound.to_dict(),
            "intervals": [asdict(i) for i in self.intervals],
            "tags": dict(self.tags),
            "assumptions": dict(self.assumptions),
            "counters": dict(self.counters),
        }
