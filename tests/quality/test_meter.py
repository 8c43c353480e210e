import pytest

from quality.meter import DirectionMeter
from quality.playout import FixedPlayout
from quality.sequence import Arrival


def test_untimed_stream_reports_no_jitter_but_exact_loss() -> None:
    m = DirectionMeter()
    for i in (1, 2, 3, 5, 6):
        m.update(i, i * 0.020, None)
    f = m.figures()
    assert f.jitter_ms is None and f.buffer_delay_ms is None and f.late_discards is None
    assert (f.lost, f.gaps, f.timestamp_gaps) == (1, 1, 1)
    assert f.missing_ms == pytest.approx(20.0)


def test_timed_stream_feeds_jitter_and_playout() -> None:
    m = DirectionMeter(FixedPlayout(0.020))
    delays = [0.0, 0.010, 0.0, 0.030, 0.0]
    for i, d in enumerate(delays, start=1):
        m.update(i, i * 0.020, i * 0.020 + d)
    f = m.figures()
    assert f.jitter_ms is not None and f.jitter_ms > 0
    assert f.late_discards == 1  # the 30 ms one misses a 20 ms buffer
    assert f.effective_loss_pct == pytest.approx(20.0)


def test_duplicates_do_not_feed_jitter() -> None:
    m = DirectionMeter()
    m.update(1, 0.0, 0.0)
    m.update(2, 0.02, 0.02)
    assert m.update(2, 0.02, 0.9) is Arrival.DUPLICATE
    assert m.figures().jitter_ms == 0.0


def test_loss_comes_from_the_media_clock_and_a_reordered_frame_fills_its_slot() -> None:
    # Twilio's counter never skips; frame slots 3 and 6 are missing from the media clock, and
    # slot 6 arrives late (its message after slot 7's): reordered, not lost.
    m = DirectionMeter()
    for chunk, slot in [(1, 0), (2, 1), (3, 2), (4, 4), (5, 5), (7, 7), (6, 6), (8, 8)]:
        m.update(chunk, slot * 0.020, None)
    f = m.figures()
    assert (f.expected, f.frames, f.lost, f.gaps, f.reordered, f.chunk_gaps) == (9, 8, 1, 1, 1, 0)
    assert f.timestamp_gaps == 2  # two steps over missing media time, one of them later filled


def test_a_gap_reports_its_missing_frames_for_concealment() -> None:
    m = DirectionMeter()
    m.update(1, 0.0, 0.0)
    assert m.update(2, 0.080, 0.080) is Arrival.GAP
    assert m.last_missing == 3
    assert m.update(3, 0.100, 0.100) is Arrival.IN_ORDER and m.last_missing == 0


def _hostile_stream(seed: int, n: int = 3000) -> list[tuple[int, float, float | None]]:
    """Frames as a receiver might see them: mostly in order, with media-clock loss, duplicates,
    reordering, a backwards and a jumping timestamp, untimed frames and jittered arrivals."""
    import random

    rng = random.Random(seed)
    frames: list[tuple[int, float, float | None]] = []
    chunk, ts, t = 1, 0.0, 0.0
    for _ in range(n):
        r = rng.random()
        if r < 0.03:
            ts += 0.020 * rng.randint(1, 6)  # loss before Twilio: a timestamp step
        elif r < 0.035:
            ts += rng.choice([30.0, -30.0])  # a clock jump either way
        elif r < 0.04 and frames:
            frames.append(frames[-1])  # a duplicate
            continue
        elif r < 0.045 and len(frames) > 3:
            frames.insert(len(frames) - 2, frames.pop())  # reordered
            continue
        elif r < 0.05:
            ts -= 0.040  # a timestamp behind the stream, its counter in order
        t += 0.020 + rng.expovariate(1 / 0.004)
        frames.append((chunk, ts + rng.choice([0.0, 0.0, 0.0, 0.0005, 0.029, 0.031]),
                       None if rng.random() < 0.01 else t))
        chunk += 1
        ts += 0.020
    return frames


@pytest.mark.parametrize("seed", range(6))
def test_deferred_metering_gives_every_frame_and_every_figure_the_frame_by_frame_meters_give(seed: int) -> None:
    """The reference meters each frame at once through the one algorithm (``_update``); the meter
    under test defers in-order frames. Fates, missing counts, clock verdicts and every figure,
    read mid-stream and at the end, must be identical."""
    deferred, reference = DirectionMeter(), DirectionMeter()
    most_waiting = 0
    for i, (seq, ts, arrival) in enumerate(_hostile_stream(seed)):
        got = deferred.update(seq, ts, arrival)
        most_waiting = max(most_waiting, len(deferred._seqs))
        want = reference._update(seq, ts, arrival)
        assert (got, deferred.last_missing, deferred.last_clock) == \
            (want, reference.last_missing, reference.last_clock), f"frame {i}: {seq, ts, arrival}"
        if i % 337 == 0:
            assert deferred.figures() == reference.figures()
            assert deferred.jitter.sum_ms == reference.jitter.sum_ms
    assert deferred.figures() == reference.figures()
    assert most_waiting >= 10  # frames were deferred, not only metered at once


def test_a_clean_stream_is_metered_a_second_at_a_time_and_read_whole() -> None:
    meter = DirectionMeter()
    for i in range(120):
        assert meter.update(i + 1, i * 0.020, 0.1 + i * 0.020) is Arrival.IN_ORDER
    assert len(meter._seqs) == 120 - 1 - 100  # the first metered at once, two batches of 50, 19 waiting
    f = meter.figures()
    assert not meter._seqs and f.frames == f.expected == 120 and f.lost == 0
