"""The P.834-style derivations used for the non-ITU codec rows, checked on G.113 rows."""

import pytest

from quality.emodel import r_to_mos
from quality.impairments import CODECS, bpl_from_ie_eff, ie_from_mos_lqo


def test_ie_from_mos_recovers_a_g113_ie() -> None:
    # G.729A + VAD has Ie 11 (G.113 Table I.1): its MOS next to G.711's must give back 11.
    ref, g729a = r_to_mos(93.2062), r_to_mos(93.2062 - 11.0)
    assert ie_from_mos_lqo(ref, g729a) == pytest.approx(11.0, abs=1e-6)


def test_bpl_from_ie_eff_recovers_g711_plc() -> None:
    # G.711 + PLC at 2 % random loss: Ie,eff = 95 * 2 / 27.1 = 7.011 -> Bpl 25.1
    assert bpl_from_ie_eff(0.0, 2.0, 95 * 2 / 27.1) == pytest.approx(25.1)
    with pytest.raises(ValueError):
        bpl_from_ie_eff(5.0, 2.0, 5.0)


def test_every_row_states_its_source_and_non_itu_rows_say_so() -> None:
    for codec in CODECS.values():
        assert codec.source
        if not codec.standard:
            assert "not an ITU-T value" in codec.source or "measured" in codec.source
    assert CODECS["g711"].bpl == 4.3 and CODECS["g711-plc"].bpl == 25.1
    # higher Opus bitrate, lower impairment
    assert CODECS["opus16k-32"].ie < CODECS["opus16k"].ie < CODECS["opus16k-16"].ie
