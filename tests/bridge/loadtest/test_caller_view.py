"""The callers' view, pure: tags in mu-law, arrivals, and the join with the stand-in's stamps."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from bridge.loadtest.arrivals import arrival_times, count_bounds
from bridge.loadtest.caller_view import TaggedCallerTap, caller_view
from bridge.stand_ins.audio_tags import (
    AI_TAG_LEN,
    AI_TAG_SPACING,
    AiTag,
    CallerTag,
    find_ai_tags,
    find_caller_tags,
    tag_ai_audio,
    tag_caller_frame,
)
from bridge.stand_ins.stamp_log import SessionStamps, StampLog, merge_records, read_stamps


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_tags_round_trip_and_stay_quiet() -> None:
    frame = tag_caller_frame(b"\xff" * 160, CallerTag(nonce=321, call=4, frame=99))
    assert len(frame) == 160 and find_caller_tags(frame) == [CallerTag(321, 4, 99)]
    assert all(b & 0x70 == 0x70 for b in frame)  # segment-0 mu-law codes only: |x| <= 120 of 32767
    audio = tag_ai_audio(bytes(range(256)) * 10, session=7, base_offset=1000)
    found = find_ai_tags(audio)
    assert [t for _, t in found] == [AiTag(7, 1000 + k * AI_TAG_SPACING) for k in range(len(found))]
    assert [p for p, _ in found] == [k * AI_TAG_SPACING for k in range(len(found))]
    assert find_caller_tags(audio) == [] and find_ai_tags(frame) == []


def test_a_corrupted_tag_is_not_read() -> None:
    frame = bytearray(tag_caller_frame(b"\xff" * 160, CallerTag(1, 2, 3)))
    frame[-3] ^= 0x01
    assert find_caller_tags(bytes(frame)) == []


def test_even_arrivals_are_exact_and_poisson_ones_keep_their_mean() -> None:
    even = arrival_times(4.0, 2.5, "even", random.Random(0))
    assert even == [k / 4.0 for k in range(10)] and count_bounds(4.0, 2.5, "even") == (10, 10)
    counts = [len(arrival_times(5.0, 20.0, "poisson", random.Random(s))) for s in range(200)]
    lo, hi = count_bounds(5.0, 20.0, "poisson")
    assert all(lo <= n <= hi for n in counts)
    assert statistics.mean(counts) == pytest.approx(100.0, abs=3.0)  # mean rate x duration
    assert statistics.variance(counts) == pytest.approx(100.0, rel=0.35)  # Poisson: variance = mean
    times = arrival_times(5.0, 20.0, "poisson", random.Random(1))
    assert times == sorted(times) and all(0 <= t < 20.0 for t in times)
    assert times == arrival_times(5.0, 20.0, "poisson", random.Random(1))  # seeded


def test_the_join_gives_latency_each_way_whatever_the_framing() -> None:
    clock = Clock()
    stand_in = SessionStamps(session=5, clock=clock)
    tap = TaggedCallerTap(clock)
    # caller -> AI: frame 0 sent at 100.000, appended at 100.004
    tap.sent(0)
    clock.t = 100.004
    stand_in.input(tag_caller_frame(b"\xff" * 160, CallerTag(9, 2, 0)))
    # AI -> caller: a 400-byte answer in deltas of 100 and 300 bytes, received in 3 odd-sized messages
    audio = stand_in.tag_response(b"\xff" * 400)
    clock.t = 101.000
    stand_in.delta(0, 100)
    clock.t = 101.010
    stand_in.delta(100, 400)
    clock.t = 101.013
    tap.received(audio[:10])  # the first tag is split across two messages
    clock.t = 101.015
    tap.received(audio[10:170])  # completes tag 0 (its bytes in delta 1); tag 160 is cut at 170
    clock.t = 101.030
    tap.hung_up()  # 170 of 400 bytes received: 230 bytes (28.75 ms) still on their way
    tap.received(audio[170:])
    record = stand_in.take(events_in=1)
    assert record is not None and stand_in.take(events_in=1) is None
    view = caller_view({2: tap}, nonce=9, records=merge_records([record]))
    assert view.to_ai_ms is not None and view.to_ai_ms["max"] == pytest.approx(4.0)
    assert view.to_caller_ms is not None
    # tag 0 (delta sent 101.000) read at 101.015; tags 160 and 320 (delta sent 101.010) at 101.030
    assert view.to_caller_ms["p50"] == pytest.approx(20.0) and view.to_caller_ms["max"] == pytest.approx(20.0)
    assert view.to_caller_ms["mean"] == pytest.approx((15.0 + 20.0 + 20.0) / 3)
    assert view.counts["tags_matched"] == 3 and view.counts["frames_matched"] == 1
    assert view.queued_at_hangup_ms == {"p50": 28.75, "p99": 28.75, "max": 28.75, "mean": 28.75}
    assert AI_TAG_LEN < 160


def test_the_steady_window_keeps_only_what_was_sent_inside_it() -> None:
    """A ramp's slow frames (sent before the window) and a hangup's (after) count in the whole run's
    figures but not in the steady window's, which is judged by when each frame or delta was sent."""
    clock = Clock()
    stand_in = SessionStamps(session=3, clock=clock)
    tap = TaggedCallerTap(clock)
    for frame, sent, arrived in ((0, 100.0, 100.050), (1, 101.0, 101.004), (2, 103.5, 103.530)):
        clock.t = sent
        tap.sent(frame * 20)
        clock.t = arrived
        stand_in.input(tag_caller_frame(b"\xff" * 160, CallerTag(9, 1, frame)))
    audio = stand_in.tag_response(b"\xff" * 2 * AI_TAG_SPACING)  # two tags, one delta each
    for k, (sent, read) in enumerate(((100.5, 100.580), (101.5, 101.506))):
        clock.t = sent
        stand_in.delta(k * AI_TAG_SPACING, (k + 1) * AI_TAG_SPACING)
        clock.t = read
        tap.received(audio[k * AI_TAG_SPACING:(k + 1) * AI_TAG_SPACING])
    record = stand_in.take(events_in=3)
    assert record is not None
    view = caller_view({1: tap}, nonce=9, records=merge_records([record]), steady=(100.8, 103.0))
    assert view.to_ai_ms is not None and view.to_ai_ms["max"] == pytest.approx(50.0)
    assert view.steady_to_ai_ms is not None and view.steady_to_ai_ms["max"] == pytest.approx(4.0)
    assert view.to_caller_ms is not None and view.to_caller_ms["max"] == pytest.approx(80.0)
    assert view.steady_to_caller_ms is not None and view.steady_to_caller_ms["max"] == pytest.approx(6.0)
    assert caller_view({1: tap}, nonce=9, records=merge_records([record])).steady_to_ai_ms is None


def test_sessions_of_other_runs_are_not_joined() -> None:
    clock = Clock()
    other = SessionStamps(session=1, clock=clock)
    other.input(tag_caller_frame(b"\xff" * 160, CallerTag(8, 0, 0)))  # nonce 8: another run
    tap = TaggedCallerTap(clock)
    tap.sent(0)
    record = other.take(events_in=1)
    assert record is not None
    view = caller_view({0: tap}, nonce=9, records=[record])
    assert view.to_ai_ms is None and view.counts["calls_with_sessions"] == 0


def test_stamps_written_a_session_at_a_time_read_back_exact_and_whole(tmp_path: Path) -> None:
    """The file between the stand-in and the rig: every stamp reads back to the same float, a
    session's lines add up, and a line still being written waits for the next read."""
    clock = Clock()
    log = StampLog(tmp_path / "stamps.jsonl", clock)
    a, b = log.session(), log.session()
    clock.t = 100.0 + 1 / 3
    a.input(tag_caller_frame(b"\xff" * 160, CallerTag(9, 1, 0)))
    b.tag_response(b"\xff" * 400)
    clock.t = 101.1 + 1e-9
    b.delta(0, 400)
    log.write([(a, 3), (b, 1)])
    clock.t = 102.0
    a.input(tag_caller_frame(b"\xff" * 160, CallerTag(9, 1, 1)))
    log.write([(a, 5), (b, 1)])  # b has nothing new: no line
    with log.path.open("ab") as f:
        f.write(b'{"session": 1, "events_in"')  # half a line
    records, offset = read_stamps(log.path)
    assert offset == log.path.stat().st_size - len(b'{"session": 1, "events_in"') and len(records) == 3
    merged = {r["session"]: r for r in merge_records(records)}
    assert merged[1]["inputs"] == [[9, 1, 0, 100.0 + 1 / 3], [9, 1, 1, 102.0]] and merged[1]["events_in"] == 5
    assert merged[2]["outputs"] == [[0, 400, 101.1 + 1e-9]] and merged[2]["events_in"] == 1
    assert read_stamps(log.path, offset) == ([], offset)
