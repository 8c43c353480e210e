import pytest

from quality.latency import LatencyHistogram


def test_percentiles_within_bucket_resolution() -> None:
    h = LatencyHistogram()
    values = [i / 1000 / 1000 for i in range(1, 10_001)]  # 1 us .. 10 ms
    for v in reversed(values):
        h.record(v)
    s = h.summary()
    assert s.count == 10_000
    assert s.p50_ms == pytest.approx(5.0, rel=0.025)
    assert s.p99_ms == pytest.approx(9.9, rel=0.025)
    assert s.max_ms == pytest.approx(10.0)
    assert s.p50_ms >= 5.0  # reports the bucket's upper edge: never under-states
    assert s.mean_ms == pytest.approx(5.0005, rel=1e-9)


def test_zero_and_empty() -> None:
    h = LatencyHistogram()
    assert h.summary().p99_ms == 0.0
    h.record(0.0)
    h.record(0.002)
    assert h.percentile(50) == 0.0
    assert h.percentile(100) == pytest.approx(0.002)
