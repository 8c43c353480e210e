"""RFC 3550 §6.4.1 / A.8 interarrival jitter on hand-worked sequences."""

import pytest

from quality.jitter import InterarrivalJitter

TICK = 1 / 8000  # an 8 kHz RTP clock


def test_worked_sequence_from_the_rfc_formula() -> None:
    # RTP ts 0, 160, 320, 480 arrive at ticks 1000, 1160, 1400, 1480: transits 1000, 1000,
    # 1080, 1000, so |D| = 0, 80, 80 and J = 0, 80/16 = 5, 5 + (80 - 5)/16 = 9.6875 ticks.
    j = InterarrivalJitter()
    got = [j.update(a * TICK, ts * TICK) for ts, a in [(0, 1000), (160, 1160), (320, 1400), (480, 1480)]]
    assert got[0] == 0.0
    assert got[1] == pytest.approx(0.0)
    assert got[2] == pytest.approx(5 * TICK)
    assert got[3] == pytest.approx(9.6875 * TICK)
    assert j.last_ms == pytest.approx(9.6875 / 8, rel=1e-12)
    assert j.samples == 3


def test_constant_deviation_converges_to_it() -> None:
    j = InterarrivalJitter()
    now = 0.0
    for i in range(400):
        # transit alternates 0 / 10 ms, so |D| = 10 ms every packet
        j.update(now + (0.010 if i % 2 else 0.0), now)
        now += 0.020
    assert j.last_ms == pytest.approx(10.0, rel=1e-6)


def test_constant_transit_is_zero_jitter_and_uses_arrival_order() -> None:
    j = InterarrivalJitter()
    for ts in (0.0, 0.020, 0.060, 0.040, 0.080):  # reordered but each with transit 50 ms
        j.update(ts + 0.050, ts)
    assert j.jitter_s == pytest.approx(0.0, abs=1e-15)


def test_mean_and_max_of_j_are_over_every_packet_after_the_first() -> None:
    # The worked sequence above: J = 0, 5, 9.6875 ticks after packets 2, 3, 4. Wireshark's
    # "Mean Jitter" averages those three, its "Max Jitter" is the largest (checked against
    # tshark itself in tests/bridge/protocols/test_tshark.py).
    j = InterarrivalJitter()
    for ts, a in [(0, 1000), (160, 1160), (320, 1400), (480, 1480)]:
        j.update(a * TICK, ts * TICK)
    assert j.mean_ms == pytest.approx((0 + 5 + 9.6875) / 3 / 8, rel=1e-12)
    assert j.max_ms == pytest.approx(9.6875 / 8, rel=1e-12)
    assert j.sum_ms == pytest.approx((0 + 5 + 9.6875) / 8, rel=1e-12)


def test_a_spike_stays_in_the_max_after_j_has_forgotten_it() -> None:
    j = InterarrivalJitter()
    for i in range(200):
        j.update(i * 0.020 + (0.100 if i == 50 else 0.0), i * 0.020)
    assert j.last_ms < 0.01  # 150 packets later the running J is back to nothing
    assert j.max_ms == pytest.approx(100.0 / 16 + (100.0 - 100.0 / 16) / 16)  # |D| = 100 ms twice in a row
    assert 0.5 < j.mean_ms < j.max_ms


def test_update_run_is_update_per_packet_to_the_last_bit() -> None:
    import random

    rng = random.Random(7)
    times: list[float] = []
    for i in range(200):
        times += [i * 0.020, i * 0.020 + 0.05 + rng.expovariate(1 / 0.004)]
    stepped, batched = InterarrivalJitter(), InterarrivalJitter()
    stepped.update(-1.0, -1.02)
    batched.update(-1.0, -1.02)
    for i in range(0, len(times), 2):
        stepped.update(times[i + 1], times[i] + 0.5)
    batched.update_run(times, 0.5)
    assert (batched.sum_ms, batched.max_ms, batched.last_ms, batched.samples) == \
        (stepped.sum_ms, stepped.max_ms, stepped.last_ms, stepped.samples)
    assert batched.samples == 200
