"""Assessment, bands, the dominant impairment and the per-call report."""

import json
from dataclasses import replace

import pytest

from quality.bands import Band, band
from quality.impairments import CodecChain, get_codec
from quality.meter import DirectionMeter
from quality.playout import FixedPlayout
from quality.report import (
    CallReport,
    DirectionReport,
    Impairment,
    Model,
    QualityInput,
    assess,
    direction_input,
)

G711 = CodecChain.of("g711")


@pytest.mark.parametrize(
    ("mos", "expected"),
    [(4.5, Band.EXCELLENT), (4.3, Band.EXCELLENT), (4.29, Band.GOOD), (4.0, Band.GOOD),
     (3.99, Band.FAIR), (3.6, Band.FAIR), (3.59, Band.POOR), (1.0, Band.POOR)],
)
def test_bands(mos: float, expected: Band) -> None:
    assert band(mos) is expected


def test_clean_call_is_excellent_with_no_dominant_impairment() -> None:
    a = assess(QualityInput(delay_ms=0.0, chain=G711))
    assert a.band is Band.EXCELLENT
    assert a.dominant is Impairment.NONE


@pytest.mark.parametrize(
    ("q", "dominant"),
    [
        (QualityInput(delay_ms=40, chain=G711, loss_pct=3.0), Impairment.LOSS),
        (QualityInput(delay_ms=350, chain=G711), Impairment.DELAY),
        (QualityInput(delay_ms=40, chain=G711, buffer_delay_ms=60, late_pct=4.0), Impairment.JITTER),
        (QualityInput(delay_ms=40, chain=CodecChain.of("g729a")), Impairment.CODEC),
    ],
)
def test_dominant_impairment_names_the_cause(q: QualityInput, dominant: Impairment) -> None:
    a = assess(q)
    assert a.dominant is dominant
    assert sum(a.contributions.values()) == pytest.approx(93.2062 - a.r, abs=1.0)


def test_codec_chain_tandem_adds_ie_and_takes_last_bpl() -> None:
    chain = CodecChain.of("g729a", "g711-plc")
    assert chain.ie == get_codec("g729a").ie + get_codec("g711-plc").ie
    assert chain.bpl == 25.1
    assert chain.name == "g729a -> g711-plc"
    with pytest.raises(KeyError):
        CodecChain.of("nope")


def test_simplified_model_is_selectable_and_differs() -> None:
    q = QualityInput(delay_ms=100, chain=G711, loss_pct=1.0, jitter_ms=20)
    g107 = assess(q)
    simp = assess(q, Model.SIMPLIFIED)
    # simplified: eff = 100 + 40 + 10 = 150 -> 93.2 - 3.75 - 2.5 = 86.95
    assert simp.r == pytest.approx(86.95)
    assert g107.r != pytest.approx(simp.r, abs=0.5)


def test_report_from_meters_serialises_with_the_contract_keys() -> None:
    inbound = DirectionMeter(FixedPlayout(0.060))
    outbound = DirectionMeter(FixedPlayout(0.060))
    for i in range(1, 501):
        if i % 50 == 0:  # 2 % loss on the caller's listening direction
            inbound.update(i, i * 0.020, i * 0.020 + 0.030)
            continue
        inbound.update(i, i * 0.020, i * 0.020 + 0.030)
        outbound.update(i, i * 0.020, i * 0.020 + 0.030)
    rep = CallReport(
        call_sid="CA123",
        tenant="acme",
        inbound=DirectionReport("inbound", inbound.figures(), 100.0, G711.name,
                                assess(direction_input(inbound.figures(), 100.0, G711))),
        outbound=DirectionReport("outbound", outbound.figures(), 100.0, G711.name,
                                 assess(direction_input(outbound.figures(), 100.0, G711))),
        duration_s=10.0,
    )
    d = json.loads(json.dumps(rep.to_dict()))
    for key in ("call_sid", "tenant", "mos", "r", "band", "dominant_impairment", "inbound", "outbound"):
        assert key in d
    for side in ("inbound", "outbound"):
        for key in ("jitter_ms", "loss_pct", "frames", "gaps", "bridge_latency_ms"):
            assert key in d[side]
    # The last frame (500) is a multiple of 50 too, so outbound expects 1..499: 9 of them lost.
    assert d["outbound"]["loss_pct"] == pytest.approx(100 * 9 / 499)
    assert d["inbound"]["loss_pct"] == 0.0
    assert rep.mos == d["outbound"]["mos"] < d["inbound"]["mos"]
    assert d["dominant_impairment"] == "loss"


@pytest.mark.parametrize(("model", "ceiling"), [(Model.G107, 95.0), (Model.G107_1, 129.0)])
def test_upstream_loss_raises_the_first_codecs_ie_with_its_own_bpl(model: Model, ceiling: float) -> None:
    """Loss of the AI's Opus packets before the last leg: Opus's PLC conceals it, so G.107 §7.5
    (G.107.1 §7.5 for wideband, ceiling 129) applies with Opus's own Ie and Bpl."""
    opus = get_codec("opus16k")
    ie, bpl = (opus.ie, opus.bpl) if model is Model.G107 else (opus.ie_wb, opus.bpl_wb)
    assert ie is not None and bpl is not None
    # G.711 has no G.107.1 figures here, so the wideband case scores Opus on its own
    chain = CodecChain.of("opus16k", "g711") if model is Model.G107 else CodecChain.of("opus16k")
    base = QualityInput(delay_ms=150.0, chain=chain)
    clean, lossy = assess(base, model), assess(replace(base, upstream_loss_pct=4.0), model)
    assert clean.r - lossy.r == pytest.approx((ceiling - ie) * 4.0 / (4.0 + bpl))
    assert lossy.dominant is Impairment.LOSS and lossy.contributions["codec"] == clean.contributions["codec"]
    at_edge = assess(replace(base, loss_pct=4.0), model).r
    if model is Model.G107:
        assert at_edge < lossy.r  # the same 4 % at the G.711 edge, which conceals nothing, costs more
    else:
        assert at_edge == pytest.approx(lossy.r)  # one codec: upstream or not, the same formula
