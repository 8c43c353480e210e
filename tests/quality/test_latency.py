import math
import random

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


def test_histograms_merged_into_one_total_summarise_the_union() -> None:
    """Per-call histograms merged into one total (the bridge's /stats, ``BridgeStats.latency``), some
    with values still pending: the total holds every value, checked against the exact order
    statistics of the union; the merged histograms are left as they were."""
    rng = random.Random(11)
    calls = [LatencyHistogram() for _ in range(30)]
    union: list[float] = []
    for _ in range(5000):
        v = rng.choice([0.0, rng.expovariate(1000.0), rng.uniform(0.0, 0.05)])
        rng.choice(calls).record(v)
        union.append(v)
    total = LatencyHistogram()
    total.record(5.0)
    for h in calls:
        total.merge(h)
    union.append(5.0)
    s = total.summary()
    union.sort()
    assert s.count == len(union) == 5001
    assert s.max_ms == pytest.approx(union[-1] * 1000.0)
    assert s.mean_ms == pytest.approx(sum(v for v in union if v > 0) / len(union) * 1000.0)
    for pct, got_ms in ((50, s.p50_ms), (99, s.p99_ms)):
        exact = union[math.ceil(pct / 100 * len(union)) - 1]
        assert exact * 1000.0 * (1 - 1e-12) <= got_ms <= exact * 1000.0 * 10 ** (1 / 100)
    assert sum(h.summary().count for h in calls) == 5000


def test_a_tap_sees_every_value_once_in_order_as_it_is_bucketed() -> None:
    """``tap``: the Prometheus histogram's view of a call's latencies (``BridgeStats.track``)."""
    h = LatencyHistogram()
    h.record(0.5)  # before the tap: not its
    seen: list[float] = []
    h.tap(seen.extend)
    values = [i / 1000.0 for i in range(1, 151)]
    for v in values[:-1]:
        h.record(v)
    h.record(values[-1], 3)  # a message of three frames: three values
    assert len(seen) == 128  # two batches of PENDING_MAX so far
    h.flush()
    assert seen == values[:-1] + [values[-1]] * 3
    assert h.summary().count == 1 + 152


def test_values_bucketed_together_give_what_bucketing_each_at_once_gives() -> None:
    import random

    rng = random.Random(3)
    batched, each = LatencyHistogram(), LatencyHistogram()
    for i in range(1000):
        v = rng.choice([0.0, -0.001, rng.expovariate(1 / 0.002), rng.uniform(0, 0.1)])
        n = rng.choice([1, 1, 1, 5])
        batched.record(v, n)
        for _ in range(n):  # the reference: one value at a time, bucketed at once
            each.record(v)
            each._fold()
        if i % 97 == 0:
            assert batched.summary() == each.summary()
    assert batched.summary() == each.summary()
    assert [batched.percentile(p) for p in (1, 50, 99.9)] == [each.percentile(p) for p in (1, 50, 99.9)]
