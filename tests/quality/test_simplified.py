"""The simplified monitoring formula against baresip's published test vectors (test/mos.c)."""

import pytest

from quality.simplified import simplified_r


@pytest.mark.parametrize(
    ("latency", "jitter", "loss", "r", "mos"),
    [
        (0, 0, 0, 92.95, 4.404),
        (500, 0, 0, 54.20, 2.796),
        (0, 100, 0, 84.20, 4.172),
        (0, 200, 0, 64.20, 3.315),
        (0, 0, 1, 90.45, 4.350),
        (0, 0, 10, 67.95, 3.499),
        (10, 10, 10, 67.20, 3.463),
    ],
)
def test_baresip_vectors(latency: float, jitter: float, loss: float, r: float, mos: float) -> None:
    res = simplified_r(latency, jitter, loss)
    assert res.r == pytest.approx(r, abs=1e-9)
    assert res.mos == pytest.approx(mos, abs=0.001)


def test_kink_at_160_ms_is_continuous() -> None:
    below = simplified_r(149.999).r
    above = simplified_r(150.0).r  # effective 160 ms
    assert above == pytest.approx(93.2 - 4.0)
    assert below == pytest.approx(above, abs=1e-3)


def test_very_long_delay_clamps_mos_at_one() -> None:
    # baresip reports 0.990 for R = 4.2; we clamp the cubic at MOS 1.
    res = simplified_r(1000, 0, 0)
    assert res.r == pytest.approx(4.2)
    assert res.mos == 1.0
