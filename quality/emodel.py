"""The ITU-T E-model: narrowband G.107 (06/2015) and wideband G.107.1 (06/2019).

R = Ro - Is - Id - Ie,eff + A (G.107 §7.1). Every input of G.107 Table 3 is a field of
:class:`EModelParams` with its default; all delays are milliseconds.

R -> MOS follows G.107 Annex B: MOS = 1 + 0.035 R + 7e-6 R (R - 60)(100 - R). The article in
``shared/seed`` prints the cubic coefficient as 7e-7; that is a typo (with 7e-7 the default
R = 93.2 would map to 4.27 instead of 4.41).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

R_DEFAULT = 93.2  # G.107 §7.1 note: R with every parameter at its Table 3 default (93.19...)
RO_WB = 129.0  # G.107.1 §7.2: basic signal-to-noise ratio of the wideband scale
WB_SCALE = RO_WB / 100.0  # the wideband scale's stretch over the narrowband one


@dataclass(frozen=True)
class EModelParams:
    """ITU-T G.107 Table 3 parameters with their default values (delays in ms, levels in dB)."""

    slr: float = 8.0  # send loudness rating
    rlr: float = 2.0  # receive loudness rating
    stmr: float = 15.0  # sidetone masking rating
    lstr: float = 18.0  # listener sidetone rating
    ds: float = 3.0  # D-value of telephone, send side
    dr: float = 3.0  # D-value of telephone, receive side
    telr: float = 65.0  # talker echo loudness rating
    wepl: float = 110.0  # weighted echo path loss
    t: float = 0.0  # mean one-way delay of the echo path
    tr: float = 0.0  # round-trip delay in a 4-wire loop
    ta: float = 0.0  # absolute delay in echo-free connections (mouth to ear)
    qdu: float = 1.0  # number of quantization distortion units
    ie: float = 0.0  # equipment impairment factor
    bpl: float = 4.3  # packet-loss robustness factor
    ppl: float = 0.0  # random packet-loss probability, %
    burst_r: float = 1.0  # burst ratio
    nc: float = -70.0  # circuit noise referred to the 0 dBr point, dBm0p
    nfor: float = -64.0  # noise floor at the receive side, dBmp
    ps: float = 35.0  # room noise at the send side, dB(A)
    pr: float = 35.0  # room noise at the receive side, dB(A)
    a: float = 0.0  # advantage factor
    st: float = 1.0  # delay sensitivity (G.107 §7.4, 2011 and later)
    mt: float = 100.0  # minimum perceivable delay, ms

    def with_delay(self, one_way_ms: float) -> EModelParams:
        """Set T = Ta = D and Tr = 2 D: one delay for a four-wire packet path, echo-controlled."""
        return replace(self, t=one_way_ms, ta=one_way_ms, tr=2.0 * one_way_ms)


@dataclass(frozen=True)
class EModelResult:
    """An R value and its terms, so a user can see which impairment costs what."""

    r: float
    mos: float
    ro: float
    is_: float
    id_: float
    idte: float
    idle: float
    idd: float
    ie_eff: float
    a: float
    wideband: bool = False

    def impairments(self) -> dict[str, float]:
        return {
            "ro": self.ro,
            "is": self.is_,
            "id": self.id_,
            "idte": self.idte,
            "idle": self.idle,
            "idd": self.idd,
            "ie_eff": self.ie_eff,
            "a": self.a,
        }


def _db_sum(*levels: float) -> float:
    # fsum is exactly rounded: the same bits on every Python (3.12 changed how sum() adds floats)
    return 10.0 * math.log10(math.fsum(math.pow(10.0, x / 10.0) for x in levels))


def basic_snr(p: EModelParams) -> tuple[float, float]:
    """Return (Ro, No): the basic signal-to-noise ratio and the total noise (G.107 §7.2)."""
    olr = p.slr + p.rlr
    nos = p.ps - p.slr - p.ds - 100.0 + 0.004 * (p.ps - olr - p.ds - 14.0) ** 2
    pre = p.pr + 10.0 * math.log10(1.0 + 10.0 ** ((10.0 - p.lstr) / 10.0))
    nor = p.rlr - 121.0 + pre + 0.008 * (pre - 35.0) ** 2
    nfo = p.nfor + p.rlr
    no = _db_sum(p.nc, nos, nor, nfo)
    return 15.0 - 1.5 * (p.slr + no), no


def _ist(stmr_o: float) -> float:
    pw = math.pow
    return (
        12.0 * pw(1.0 + pw((stmr_o - 13.0) / 6.0, 8), 1.0 / 8.0)
        - 28.0 * pw(1.0 + pw((stmr_o + 1.0) / 19.4, 35), 1.0 / 35.0)
        - 13.0 * pw(1.0 + pw((stmr_o - 3.0) / 33.0, 13), 1.0 / 13.0)
        + 29.0
    )


def simultaneous_impairment(p: EModelParams, ro: float, no: float) -> tuple[float, float]:
    """Return (Is, Ist) = Iolr + Ist + Iq (G.107 §7.3); Ist is reused by Idte."""
    olr = p.slr + p.rlr
    xolr = olr + 0.2 * (64.0 + no - p.rlr)
    iolr = 20.0 * ((1.0 + (xolr / 8.0) ** 8) ** (1.0 / 8.0) - xolr / 8.0)
    stmr_o = -10.0 * math.log10(10.0 ** (-p.stmr / 10.0) + math.exp(-p.t / 4.0) * 10.0 ** (-p.telr / 10.0))
    ist = _ist(stmr_o)
    q = 37.0 - 15.0 * math.log10(p.qdu)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0
    z = 46.0 / 30.0 - g / 40.0
    iq = 15.0 * math.log10(1.0 + 10.0**y + 10.0**z)
    return iolr + ist + iq, ist


def delay_impairment(p: EModelParams, ro: float, no: float, ist: float) -> tuple[float, float, float]:
    """Return (Idte, Idle, Idd): talker echo, listener echo and pure delay (G.107 §7.4)."""
    roe = -1.5 * (no - p.rlr)
    terv = (p.telr - 40.0 * math.log10((1.0 + p.t / 10.0) / (1.0 + p.t / 150.0))
            + 6.0 * math.exp(-0.3 * p.t**2))
    if p.stmr < 9.0:
        terv += ist / 2.0
    re = 80.0 + 2.5 * (terv - 14.0)
    idte = ((roe - re) / 2.0 + math.sqrt((roe - re) ** 2 / 4.0 + 100.0) - 1.0) * (1.0 - math.exp(-p.t))
    if p.stmr > 20.0:
        idte = math.sqrt(idte**2 + ist**2)
    idte += 0.0  # (1 - e^-T) is 0 at T = 0: turn the resulting -0.0 into 0.0
    rle = 10.5 * (p.wepl + 7.0) * (p.tr + 1.0) ** -0.25
    idle = (ro - rle) / 2.0 + math.sqrt((ro - rle) ** 2 / 4.0 + 169.0)
    if p.ta <= p.mt:
        idd = 0.0
    else:
        x = math.log10(p.ta / p.mt) / math.log10(2.0)
        e = 6.0 * p.st
        idd = 25.0 * ((1.0 + x**e) ** (1.0 / e) - 3.0 * (1.0 + (x / 3.0) ** e) ** (1.0 / e) + 2.0)
    return idte, idle, idd


def effective_equipment_impairment(ie: float, bpl: float, ppl: float, burst_r: float,
                                   ceiling: float = 95.0) -> float:
    """Ie,eff = Ie + (ceiling - Ie) * Ppl / (Ppl / BurstR + Bpl) (G.107 §7.5; ceiling 129 wideband)."""
    if ppl <= 0.0:
        return ie
    return ie + (ceiling - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(p: EModelParams) -> EModelResult:
    """The narrowband transmission rating R of G.107 §7.1, with its terms."""
    ro, no = basic_snr(p)
    is_, ist = simultaneous_impairment(p, ro, no)
    idte, idle, idd = delay_impairment(p, ro, no, ist)
    ie_eff = effective_equipment_impairment(p.ie, p.bpl, p.ppl, p.burst_r)
    id_ = idte + idle + idd
    r = ro - is_ - id_ - ie_eff + p.a
    return EModelResult(r=r, mos=r_to_mos(r), ro=ro, is_=is_, id_=id_, idte=idte, idle=idle, idd=idd,
                        ie_eff=ie_eff, a=p.a)


def r_factor_wideband(p: EModelParams, ie_wb: float, bpl_wb: float) -> EModelResult:
    """The wideband rating R_wb of G.107.1 (0..129).

    R_wb = Ro,wb - Is,wb - Id,wb - Ie,eff,wb + A with Ro,wb = 129 (G.107.1 §7.2); Is,wb = 0
    (§7.3: loudness, sidetone and noise are not yet modelled for wideband); Id,wb from the G.107
    delay formulas (§7.4); Ie,eff,wb with 129 in place of 95 (§7.5). ``p.ie``/``p.bpl`` are
    ignored in favour of the wideband codec values. ``mos`` comes from R_wb / 1.29
    (see :func:`wideband_to_narrowband_r`).
    """
    ro, no = basic_snr(p)
    _, ist = simultaneous_impairment(p, ro, no)
    idte, idle, idd = delay_impairment(p, ro, no, ist)
    ie_eff = effective_equipment_impairment(ie_wb, bpl_wb, p.ppl, p.burst_r, ceiling=RO_WB)
    id_ = idte + idle + idd
    r = RO_WB - id_ - ie_eff + p.a
    return EModelResult(r=r, mos=r_to_mos(wideband_to_narrowband_r(r)), ro=RO_WB, is_=0.0, id_=id_,
                        idte=idte, idle=idle, idd=idd, ie_eff=ie_eff, a=p.a, wideband=True)


def wideband_to_narrowband_r(r_wb: float) -> float:
    """Map R_wb (0..129) onto the narrowband R scale as R = R_wb / 1.29 (G.107.1 Annex A, as
    open implementations apply it; not checked against the normative text here).

    The result is a score in a wideband listening context, where narrowband speech itself loses
    points: compare it with other wideband scores, not with narrowband G.107 ones.
    """
    return r_wb / WB_SCALE


def r_to_mos(r: float) -> float:
    """MOS_CQE from R (G.107 Annex B): 1 below R=0, 4.5 above R=100, the cubic between.

    The cubic dips to 0.99 for 0 < R < 6.5; like G.107's own MOS range, we clamp at 1.
    """
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r))


def mos_to_r(mos: float) -> float:
    """Inverse of :func:`r_to_mos` for 1 <= MOS <= 4.5 (G.107 Appendix I), in closed form.

    R = 20/3 (8 - sqrt(226) cos(h + pi/3)) with
    h = 1/3 atan2(15 sqrt(-903522 + 1113960 MOS - 202500 MOS^2), 18566 - 6750 MOS).
    MOS 1 maps to R = 80 - sqrt(5400) = 6.515, where the cubic of Annex B leaves 1 on its way up.
    """
    if not 1.0 <= mos <= 4.5:
        raise ValueError(f"MOS must be within 1..4.5, got {mos}")
    disc = max(0.0, -903522.0 + 1113960.0 * mos - 202500.0 * mos * mos)
    h = math.atan2(15.0 * math.sqrt(disc), 18566.0 - 6750.0 * mos) / 3.0
    return 20.0 / 3.0 * (8.0 - math.sqrt(226.0) * math.cos(h + math.pi / 3.0))
