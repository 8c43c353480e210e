"""Jitter-buffer models: buffer delay and late discards from arrival times."""

import pytest

from quality.playout import AdaptivePlayout, FixedPlayout


def test_fixed_buffer_discards_what_misses_its_deadline() -> None:
    b = FixedPlayout(depth_s=0.040)
    transit = [0.050, 0.060, 0.089, 0.091, 0.050, 0.140]  # network delay per frame
    played = [b.update(i * 0.020 + d, i * 0.020) for i, d in enumerate(transit)]
    # anchored on the first frame's 50 ms: deadline is transit <= 90 ms
    assert played == [True, True, True, False, True, False]
    s = b.stats()
    assert (s.frames, s.late) == (6, 2)
    assert s.late_pct == pytest.approx(100 * 2 / 6)
    waits = [0.040, 0.030, 0.001, 0.040]
    assert s.mean_delay_s == pytest.approx(sum(waits) / 4)
    assert s.max_delay_s == pytest.approx(0.040)


def test_adaptive_buffer_on_a_steady_stream_holds_its_minimum() -> None:
    b = AdaptivePlayout(min_s=0.020)
    for i in range(500):
        assert b.update(i * 0.020 + 0.030, i * 0.020)
    s = b.stats()
    assert s.late == 0
    assert s.mean_delay_ms == pytest.approx(20.0, abs=1e-6)


def test_adaptive_buffer_grows_with_jitter_and_drops_spikes() -> None:
    b = AdaptivePlayout(alpha=0.9, min_s=0.0, max_s=0.200)
    for i in range(400):
        b.update(i * 0.020 + (0.030 if i % 2 else 0.0), i * 0.020)
    grown = b.stats()
    assert grown.late_pct < 10
    assert grown.mean_delay_ms > 5
    b.update(400 * 0.020 + 0.500, 400 * 0.020)  # a 500 ms spike is beyond max_s
    assert b.stats().late == grown.late + 1


def test_negative_depth_is_rejected() -> None:
    with pytest.raises(ValueError):
        FixedPlayout(-0.01)


def test_adaptive_buffer_warms_up_within_the_first_second() -> None:
    # Exponential extra delay with a 20 ms mean from the very first frame: the buffer must size
    # itself from the frames it has seen, not sit at its 20 ms floor for the 10 s memory of a.
    import random

    rng = random.Random(4)
    b = AdaptivePlayout()
    for i in range(50):
        b.update(i * 0.020 + rng.expovariate(50.0), i * 0.020)
    assert b.stats().late_pct < 15.0
