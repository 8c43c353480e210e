"""Sequence tracking, loss runs and the Gilbert burst model on hand-counted patterns."""

import random

import pytest

from quality.loss import LossCounter, gilbert
from quality.sequence import Arrival, ClockStep, MediaClock, SequenceTracker


def feed(seqs: list[int], window: int = 8, modulus: int | None = None) -> SequenceTracker:
    t = SequenceTracker(window=window, modulus=modulus)
    for s in seqs:
        t.update(s)
    return t


def test_in_order_stream_has_no_loss() -> None:
    s = feed(list(range(1, 101))).stats()
    assert (s.received, s.expected, s.lost, s.gaps) == (100, 100, 0, 0)
    assert s.loss.burst_r == 1.0


def test_gap_counts_missing_packets() -> None:
    t = SequenceTracker(window=8)
    assert t.update(1) == (Arrival.IN_ORDER, 0)
    assert t.update(2) == (Arrival.IN_ORDER, 0)
    assert t.update(5) == (Arrival.GAP, 2)
    s = t.stats()
    assert (s.lost, s.gaps, s.expected) == (2, 1, 5)
    assert s.loss.runs == {2: 1}


def test_reordered_packet_is_not_lost() -> None:
    t = SequenceTracker(window=8)
    kinds = [t.update(s)[0] for s in (1, 2, 4, 3, 5)]
    assert kinds == [Arrival.IN_ORDER, Arrival.IN_ORDER, Arrival.GAP, Arrival.LATE, Arrival.IN_ORDER]
    s = t.stats()
    assert (s.lost, s.reordered, s.received) == (0, 1, 5)


def test_duplicates_are_counted_once() -> None:
    s = feed([1, 2, 2, 3, 1]).stats()
    assert (s.duplicates, s.received, s.lost) == (2, 3, 0)


def test_packet_older_than_window_is_too_late_and_stays_lost() -> None:
    t = feed([1, 2, *range(4, 20)], window=4)
    assert t.update(3) == (Arrival.TOO_LATE, 0)
    s = t.stats()
    assert (s.lost, s.too_late) == (1, 1)


def test_rtp_sequence_wraps() -> None:
    s = feed([65533, 65534, 65535, 0, 1, 3], modulus=65536).stats()
    assert (s.lost, s.expected, s.gaps) == (1, 7, 1)  # 65533..3 is 7 numbers, 2 missing


def test_huge_jump_is_counted_without_iterating() -> None:
    t = feed([1, 2])
    t.update(10**9)
    s = t.stats()
    assert s.lost == 10**9 - 3
    assert s.loss.max_run == 10**9 - 3


def test_snapshot_mid_call_does_not_change_the_result() -> None:
    pattern = [1, 2, 4, 5, 8, 9, 10, 3, 11, 12]
    a = SequenceTracker(window=4)
    b = SequenceTracker(window=4)
    for s in pattern:
        a.update(s)
        b.update(s)
        b.stats()
    assert a.stats() == b.stats()


def test_gilbert_counts_by_hand() -> None:
    # R R R L L R R R L L R: received->lost 2 of 6 received-followed transitions (p = 1/3);
    # lost->received 2 of 4 lost-followed transitions (q = 1/2); BurstR = 1 / (1/3 + 1/2) = 1.2
    c = LossCounter()
    for ch in "RRRLLRRRLLR":
        c.update(ch == "L")
    s = c.stats()
    assert s.p == pytest.approx(1 / 3)
    assert s.q == pytest.approx(1 / 2)
    assert s.burst_r == pytest.approx(1.2)
    assert s.runs == {2: 2}
    assert s.loss_pct == pytest.approx(400 / 11)
    assert s.mean_run == 2.0


def test_random_loss_has_burst_ratio_near_one() -> None:
    rng = random.Random(7)
    c = LossCounter()
    for _ in range(200_000):
        c.update(rng.random() < 0.05)
    s = c.stats()
    assert s.loss_pct == pytest.approx(5.0, abs=0.2)
    assert s.burst_r == pytest.approx(1.0, abs=0.05)


def test_gilbert_generator_ground_truth_is_recovered() -> None:
    # A two-state Markov loss generator with p = 0.02, q = 0.25: BurstR = 1 / 0.27 = 3.70
    rng = random.Random(11)
    c = LossCounter()
    lost = False
    for _ in range(300_000):
        lost = rng.random() < (1 - 0.25 if lost else 0.02)
        c.update(lost)
    s = c.stats()
    assert s.burst_r == pytest.approx(1 / 0.27, rel=0.05)
    assert s.loss_pct == pytest.approx(100 * 0.02 / 0.27, rel=0.05)


def test_update_many_equals_repeated_updates() -> None:
    a, b = LossCounter(), LossCounter()
    for lost, n in [(False, 3), (True, 4), (False, 1), (True, 2), (False, 5)]:
        a.update_many(lost, n)
        for _ in range(n):
            b.update(lost)
    assert a.stats() == b.stats()


def test_no_loss_or_open_run_edge_cases() -> None:
    assert gilbert(0, 10, 0, 0) == (0.0, 1.0, 1.0)
    p, q, burst = gilbert(1, 10, 0, 4)  # a single run of 5 losses still open at the end
    assert (p, q) == (0.1, 0.2)
    assert burst == pytest.approx(1 / 0.3)


def test_media_clock_turns_timestamp_steps_into_slots() -> None:
    g = MediaClock(0.020)
    got = [g.update(t)[:2] for t in (0.0, 0.020, 0.040, 0.100, 0.120, 0.080)]
    # 40 -> 100 ms is a step of three frames: slots 3 and 4 are missing; 80 ms goes back to slot 4
    assert got == [(ClockStep.NEXT, 0), (ClockStep.NEXT, 1), (ClockStep.NEXT, 2), (ClockStep.NEXT, 5),
                   (ClockStep.NEXT, 6), (ClockStep.EARLIER, 4)]
    assert (g.gaps, g.missing_frames, g.jumps) == (1, 2, 0)
    assert g.missing_s == pytest.approx(0.040)


def test_media_clock_takes_uneven_stamps_as_consecutive() -> None:
    g = MediaClock(0.020)
    slots = [g.update(t / 1000)[1] for t in (0, 19, 41, 60, 90, 100, 121)]
    assert slots == [0, 1, 2, 3, 4, 5, 6]  # no step is over 1.5 frames (30 ms)
    assert g.missing_frames == 0


def test_media_clock_jump_beyond_the_longest_gap_is_no_loss() -> None:
    g = MediaClock(0.020, max_gap_s=10.0)
    g.update(0.0)
    g.update(0.020)
    step, slot, media = g.update(3600.0)  # an hour ahead: a corrupt or restarted clock
    assert (step, slot, g.jumps, g.missing_frames) == (ClockStep.JUMP, 2, 1, 0)
    assert media == pytest.approx(0.040)  # continuous media time goes on from where it was
    _, slot, media = g.update(3600.040)  # and a real gap after it still counts
    assert slot == 4 and media == pytest.approx(0.080)
    assert g.missing_frames == 1


def test_a_hole_filled_by_a_reordered_frame_is_not_a_gap() -> None:
    s = feed([1, 3, 2, 4, 6, 7]).stats()
    assert (s.lost, s.reordered, s.gaps) == (1, 1, 1)  # only the hole at 5 stayed a hole


def test_a_jump_past_rfc3550_max_dropout_or_misorder_is_a_restart() -> None:
    rtp = SequenceTracker(modulus=65536)
    assert not rtp.is_restart(500)  # nothing seen yet
    rtp.update(65000)
    assert not rtp.is_restart(65000 + 2999 - 65536)  # a 2999-packet hole across the wrap: loss
    assert rtp.is_restart(65000 + 3000 - 65536)  # MAX_DROPOUT 3000 ahead: the source started over
    assert not rtp.is_restart(65000 - 99)  # under MAX_MISORDER (100) back: reordered
    assert rtp.is_restart(65000 - 100)  # udelta <= RTP_SEQ_MOD - MAX_MISORDER, as A.1 writes it
    chunks = SequenceTracker()  # Twilio chunks do not wrap and never restart
    chunks.update(1)
    assert not chunks.is_restart(100000)


def test_media_clock_jump_backwards_re_anchors_too() -> None:
    # One absurd first stamp must not leave every later frame "behind" it, unmetered.
    g = MediaClock(0.020, max_gap_s=10.0)
    g.update(1e12)
    assert [g.update(t)[:2] for t in (0.0, 0.020, 0.080)] == [
        (ClockStep.JUMP, 1), (ClockStep.NEXT, 2), (ClockStep.NEXT, 5)]
    assert (g.jumps, g.missing_frames) == (1, 2)


def test_advance_leaves_the_state_n_in_order_updates_leave() -> None:
    """A tracker with a hole, a late fill and a loss run pending takes 40 in order either way;
    stats then and after more of a hostile stream must match."""
    stepped, batched = SequenceTracker(window=8), SequenceTracker(window=8)
    for t in (stepped, batched):
        for s in (1, 2, 5, 3, 9, 10):
            t.update(s)
    for s in range(11, 51):
        assert stepped.update(s) == (Arrival.IN_ORDER, 0)
    batched.advance(40)
    assert batched.stats() == stepped.stats() and batched.highest == stepped.highest == 50
    rng = random.Random(3)
    for _ in range(300):
        s = stepped.highest + rng.choice([1, 1, 1, 2, 4, -3, 0])
        assert batched.update(s) == stepped.update(s)
    assert batched.stats() == stepped.stats()
    with pytest.raises(ValueError):
        SequenceTracker().advance(3)


def test_media_clock_advance_is_n_next_steps() -> None:
    stepped, batched = MediaClock(), MediaClock()
    for c in (stepped, batched):
        c.update(0.0)
        c.update(0.080)  # a gap: three slots missing
    for i in range(1, 21):
        assert stepped.update(0.080 + 0.020 * i + (0.009 if i % 3 else 0.0))[0] is ClockStep.NEXT
    last = 0.080 + 0.020 * 20 + 0.009
    batched.advance(20, last)
    assert (batched.highest_slot, batched.highest_ts, batched.gaps, batched.missing_frames) == \
        (stepped.highest_slot, stepped.highest_ts, stepped.gaps, stepped.missing_frames) == (24, last, 1, 3)
