"""Loop-lag figures from cumulative buckets, read the way Prometheus' histogram_quantile reads them."""

from __future__ import annotations

import math

import pytest

from quality.lag import LAG_BOUNDS_S, histogram_quantile, lag_figures

BOUNDS = (0.1, 0.2, 0.5, math.inf)


def test_the_quantile_interpolates_linearly_inside_its_bucket() -> None:
    # 100 observations: 40 in (0, 0.1], 40 in (0.1, 0.2], 20 in (0.2, 0.5]
    cumulative = (40, 80, 100, 100)
    assert histogram_quantile(0.5, BOUNDS, cumulative) == pytest.approx(0.1 + 0.1 * (50 - 40) / 40)
    assert histogram_quantile(0.2, BOUNDS, cumulative) == pytest.approx(0.1 * 20 / 40)  # first bucket from 0
    assert histogram_quantile(0.9, BOUNDS, cumulative) == pytest.approx(0.2 + 0.3 * (90 - 80) / 20)


def test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound() -> None:
    # Prometheus docs: "the upper bound of the 2nd highest bucket is returned"
    assert histogram_quantile(0.99, BOUNDS, (10, 20, 30, 100)) == 0.5


def test_figures_share_over_5_and_20_ms_and_the_saturated_flag() -> None:
    counts = [0] * len(LAG_BOUNDS_S)  # per bucket, then made cumulative
    per_bucket = {0.001: 900, 0.005: 50, 0.01: 30, 0.05: 20}
    for i, b in enumerate(LAG_BOUNDS_S):
        counts[i] = per_bucket.get(b, 0)
    cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
    f = lag_figures(LAG_BOUNDS_S, cumulative)
    assert f is not None and f.ticks == 1000
    assert f.over_5ms_pct == pytest.approx(5.0) and f.over_20ms_pct == pytest.approx(2.0)
    # rank 990 lies in (20, 50] ms, 10 of its 20 ticks in
    assert f.p99_ms == pytest.approx(20.0 + 30.0 * 10 / 20) and f.saturated
    calm = lag_figures(LAG_BOUNDS_S, [1000] * len(LAG_BOUNDS_S))
    assert calm is not None and calm.p99_ms == pytest.approx(0.99) and not calm.saturated
    assert calm.to_dict()["saturated"] is False


def test_no_tick_means_no_figures() -> None:
    assert lag_figures(LAG_BOUNDS_S, [0] * len(LAG_BOUNDS_S)) is None
    assert lag_figures(LAG_BOUNDS_S, []) is None
