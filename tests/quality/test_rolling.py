"""Rolling MOS summaries: percentiles against the published definition, bands, chart buckets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from quality.bands import Label, label
from quality.rolling import bucketize, percentile, summarize


def test_percentile_is_the_linear_interpolation_of_excel_percentile_inc() -> None:
    # Wikipedia "Percentile", the C = 1 variant (Excel PERCENTILE.INC, R type 7): {15, 20, 35, 40, 50}
    data = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(data, 40) == pytest.approx(29.0)
    assert (percentile(data, 0), percentile(data, 50), percentile(data, 100)) == (15.0, 35.0, 50.0)
    assert percentile([3.7], 90) == 3.7
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(data, 101)


@given(st.lists(st.floats(1.0, 4.5), min_size=1, max_size=60), st.floats(0.0, 100.0))
def test_percentile_matches_numpy_default(values: list[float], pct: float) -> None:
    assert percentile(sorted(values), pct) == pytest.approx(float(np.percentile(values, pct)), abs=1e-9)


def test_summary_counts_bands_at_their_thresholds() -> None:
    s = summarize([4.41, 4.3, 4.29, 4.0, 3.99, 3.6, 3.59, 1.0])
    assert s.bands == {"excellent": 2, "good": 2, "fair": 2, "poor": 2}
    assert s.calls == 8 and s.min == 1.0
    assert s.mean == pytest.approx(sum([4.41, 4.3, 4.29, 4.0, 3.99, 3.6, 3.59, 1.0]) / 8)
    empty = summarize([])
    assert (empty.calls, empty.mean, empty.p10, empty.bands["good"]) == (0, None, None, 0)


def test_the_entry_plan_sees_three_labels() -> None:
    assert [label(m) for m in (4.4, 4.0, 3.99, 3.6, 3.59)] == [Label.GOOD, Label.GOOD, Label.FAIR, Label.FAIR,
                                                                Label.POOR]


def test_buckets_are_aligned_and_empty_ones_have_no_mean() -> None:
    points = [(1000.0, 4.0), (1299.0, 3.0), (1300.0, 4.4), (1900.0, 2.0), (899.0, 1.0)]
    s = bucketize(points, start=1000.0, end=1950.0, bucket_s=300.0)
    assert s.t == [900.0, 1200.0, 1500.0, 1800.0]
    assert s.calls == [1, 2, 0, 1]  # 899 is before the start; 1299 and 1300 share [1200, 1500)
    assert s.mean == [4.0, pytest.approx(3.7), None, 2.0]
    assert s.p10[2] is None
    with pytest.raises(ValueError):
        bucketize(points, 10.0, 10.0, 60.0)
