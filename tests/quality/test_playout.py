"""Jitter-buffer models: buffer delay and late frames from arrival times."""

import math
import random

import pytest

from quality.playout import FixedPlayout, QuantilePlayout, buffer_for_jitter


def test_fixed_buffer_is_late_past_its_deadline_and_adds_its_depth_above_the_fastest_path() -> None:
    b = FixedPlayout(depth_s=0.040)
    transit = [0.050, 0.060, 0.089, 0.091, 0.040, 0.140]  # network delay per frame
    played = [b.update(i * 0.020 + d, i * 0.020) for i, d in enumerate(transit)]
    # anchored on the first frame's 50 ms: deadline is transit <= 90 ms
    assert played == [True, True, True, False, True, False]
    s = b.stats()
    assert (s.frames, s.late) == (6, 2)
    assert s.late_pct == pytest.approx(100 * 2 / 6)
    # playout at 90 ms transit, above the fastest transit seen so far: 50 ms four times, then 40 ms
    assert s.mean_delay_s == pytest.approx((4 * 0.040 + 2 * 0.050) / 6)
    assert s.max_delay_s == pytest.approx(0.050)


def test_quantile_buffer_on_a_steady_stream_holds_one_frame() -> None:
    b = QuantilePlayout()
    rng = random.Random(2)
    for i in range(500):  # loopback-like: 0.3 ms of noise is far inside the one-frame floor
        assert b.update(i * 0.020 + 0.030 + rng.uniform(0.0, 0.0003), i * 0.020)
    s = b.stats()
    assert s.late == 0
    assert s.mean_delay_ms == pytest.approx(20.0, abs=0.3)


def test_quantile_buffer_on_exponential_delay_holds_its_99th_percentile() -> None:
    # Independent exponential delays, mean 10 ms: the 99th percentile is 10 ln 100 = 46.05 ms
    # above the fastest path, and 1 % of frames arrive after it.
    rng = random.Random(11)
    b = QuantilePlayout()
    n = 30_000
    for i in range(n):
        b.update(i * 0.020 + 0.050 + rng.expovariate(100.0), i * 0.020)
    s = b.stats()
    assert s.late_pct == pytest.approx(1.0, abs=0.3)
    assert s.mean_delay_ms == pytest.approx(10.0 * math.log(100.0), rel=0.08)


def test_quantile_buffer_warms_up_on_the_largest_delay_seen() -> None:
    b = QuantilePlayout(min_depth_s=0.0)
    assert b.update(0.100, 0.0)  # the first frame plays as it comes
    assert not b.update(0.020 + 0.130, 0.020)  # 30 ms later than anything seen: late
    assert b.update(0.040 + 0.125, 0.040)  # under the largest so far (130 ms): played
    assert b.stats().max_delay_s == pytest.approx(0.030)  # 130 ms above the fastest 100 ms


def test_quantile_buffer_forgets_beyond_its_window() -> None:
    b = QuantilePlayout(window=50)
    b.update(0.0 + 0.300, 0.0)  # one 300 ms spike ...
    for i in range(1, 200):
        b.update(i * 0.020 + 0.020, i * 0.020)
    # ... is forgotten after 50 frames: the buffer shrinks back to its one-frame floor
    assert b.update(200 * 0.020 + 0.040, 200 * 0.020)
    assert not b.update(201 * 0.020 + 0.041, 201 * 0.020)


def test_quantile_buffer_follows_clock_drift() -> None:
    # Transit grows 100 ppm (the sender's clock runs slow: 60 ms over the 10 minutes) under
    # exponential jitter of mean 5 ms: sized to its own window, the buffer still holds about the
    # jitter's 99th percentile (5 ln 100 = 23 ms, plus the window's 1 ms of drift), not the drift.
    rng = random.Random(5)
    b = QuantilePlayout()
    for i in range(30_000):
        b.update(i * 0.020 * 1.0001 + 0.040 + rng.expovariate(200.0), i * 0.020)
    s = b.stats()
    assert s.late_pct == pytest.approx(1.0, abs=0.4)
    assert s.mean_delay_ms == pytest.approx(5.0 * math.log(100.0) + 0.5, rel=0.1)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        FixedPlayout(-0.01)
    for q in (0.0, 1.0):
        with pytest.raises(ValueError):
            QuantilePlayout(quantile=q)
    with pytest.raises(ValueError):
        QuantilePlayout(window=0)
    with pytest.raises(ValueError):
        QuantilePlayout(min_depth_s=-0.001)


def test_jitter_alone_maps_through_the_exponential_quantile() -> None:
    assert buffer_for_jitter(0.0) == (0.0, 0.0)  # no jitter stated: the delay given is all there is
    # 2 ln 100 = 9.2 ms is under the floor, which holds all but e^-10 of exponential delay
    buf, late = buffer_for_jitter(2.0)
    assert buf == 20.0 and late == pytest.approx(100.0 * math.exp(-10.0))
    buf, late = buffer_for_jitter(5.0)
    assert buf == pytest.approx(5.0 * math.log(100.0))  # 23.03 ms
    assert late == pytest.approx(1.0)


@pytest.mark.parametrize("make", [lambda: QuantilePlayout(window=40), lambda: QuantilePlayout(),
                                  lambda: FixedPlayout(depth_s=0.030)])
def test_update_run_is_update_per_frame_to_the_last_bit(make: object) -> None:
    """Runs of 50 frames, before and after the window fills, against one update per frame."""
    rng = random.Random(11)
    stepped, batched = make(), make()  # type: ignore[operator]
    for start in range(0, 1500, 50):
        times: list[float] = []
        for i in range(start, start + 50):
            times += [i * 0.020, i * 0.020 + 0.04 + rng.expovariate(1 / 0.006)]
        for i in range(0, len(times), 2):
            stepped.update(times[i + 1], times[i] + 2.0)
        batched.update_run(times, 2.0)
        assert batched.stats() == stepped.stats()
    assert stepped.stats().late > 0
