"""A reader's fair turn: yield after TURN_S of buffered messages, never after a receive that waited."""

from __future__ import annotations

import time

from bridge.live.turns import RECEIVE_BLOCKED_S, TURN_S, Turn


def test_a_reader_yields_once_its_turn_of_buffered_messages_is_over() -> None:
    turn = Turn()
    t = time.monotonic() + 1.0
    assert not turn.over(t - 0.01, t)  # waited on the socket: the others ran, a new turn starts
    quick = RECEIVE_BLOCKED_S / 4
    steps = 0
    now = t
    while not turn.over(now, now + quick):
        now += quick
        steps += 1
    assert TURN_S / quick - 2 <= steps <= TURN_S / quick + 1  # about TURN_S of buffered receives
    assert not turn.over(now + quick, now + 2 * quick)  # the yield began a new turn


def test_a_receive_that_waited_starts_a_new_turn() -> None:
    turn = Turn()
    t = time.monotonic() + 1.0
    turn.over(t, t + 0.0001)
    later = t + TURN_S * 3
    assert not turn.over(later - 2 * RECEIVE_BLOCKED_S, later)
    assert not turn.over(later, later + RECEIVE_BLOCKED_S / 2)
