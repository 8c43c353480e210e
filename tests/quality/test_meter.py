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
