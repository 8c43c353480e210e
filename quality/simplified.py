"""The simplified E-model used by common VoIP monitors, for comparison with their figures.

Effective latency = latency + 2 x jitter + 10 ms (codec allowance); R = 93.2 - eff/40 below
160 ms and 93.2 - (eff - 120)/10 from 160 ms on; then R -= 2.5 x loss %. This is the
approximation popularised by NetIQ/Cisco-era monitoring tools (a reduction of G.107 with
G.711 defaults); it is not an ITU-T formula, so mosbridge offers it as ``--model simplified``
only so users can line its numbers up with what their other tools report.
"""

from __future__ import annotations

from dataclasses import dataclass

from quality.emodel import R_DEFAULT, r_to_mos

CODEC_ALLOWANCE_MS = 10.0


@dataclass(frozen=True)
class SimplifiedResult:
    r: float
    mos: float
    effective_latency_ms: float
    latency_term: float
    loss_term: float


def simplified_r(latency_ms: float, jitter_ms: float = 0.0, loss_pct: float = 0.0) -> SimplifiedResult:
    """R and MOS from one-way latency, jitter and loss by the simplified formula."""
    eff = latency_ms + 2.0 * jitter_ms + CODEC_ALLOWANCE_MS
    latency_term = eff / 40.0 if eff < 160.0 else (eff - 120.0) / 10.0
    loss_term = 2.5 * loss_pct
    r = R_DEFAULT - latency_term - loss_term
    return SimplifiedResult(r=r, mos=r_to_mos(r), effective_latency_ms=eff, latency_term=latency_term,
                            loss_term=loss_term)
