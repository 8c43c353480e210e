"""The AI leg's state table: the transitions it allows, the ones it refuses, and the budget."""

from __future__ import annotations

import pytest

from bridge.core.ai_state import TRANSITIONS, AiInput, AiLeg, AiState, AiTransitionError


def state(leg: AiLeg) -> AiState:
    return leg.state  # read afresh: each call moves the leg (mypy would keep an earlier narrowing)


def test_a_first_session_comes_up_and_a_close_reconnects() -> None:
    leg = AiLeg(max_reconnects=2, healthy_s=60.0, now=0.0)
    assert state(leg) is AiState.CONNECTING and not leg.up
    leg.connected(0.5)
    assert state(leg) is AiState.UP and leg.up
    closed = leg.closed(1.0)
    assert closed.reconnect and (closed.attempt, closed.budget) == (1, 2)
    assert state(leg) is AiState.RECONNECTING and not leg.up
    leg.connected(1.5)
    assert leg.up


def test_a_first_connect_that_fails_reconnects_too() -> None:
    leg = AiLeg(max_reconnects=1, healthy_s=60.0, now=0.0)
    assert leg.closed(5.0).attempt == 1
    assert leg.state is AiState.RECONNECTING


def test_failed_attempts_in_a_row_spend_the_budget_then_the_leg_fails() -> None:
    leg = AiLeg(max_reconnects=3, healthy_s=60.0, now=0.0)
    leg.connected(0.0)
    assert [leg.closed(t).attempt for t in (1.0, 2.0, 3.0)] == [1, 2, 3]  # closes of failed attempts too
    last = leg.closed(4.0)
    assert not last.reconnect and last.attempt is None and leg.state is AiState.FAILED


def test_no_budget_fails_at_the_first_close() -> None:
    leg = AiLeg(max_reconnects=0, healthy_s=60.0, now=0.0)
    leg.connected(0.0)
    assert not leg.closed(100.0).reconnect and leg.state is AiState.FAILED


def test_a_session_that_lived_healthy_s_renews_the_budget() -> None:
    leg = AiLeg(max_reconnects=1, healthy_s=60.0, now=0.0)
    leg.connected(0.0)
    assert leg.closed(3600.0).attempt == 1
    leg.connected(3600.5)
    assert leg.closed(7200.5).attempt == 1  # an hour up: renewed, not 2 of 1
    leg.connected(7201.0)
    assert not leg.closed(7202.0).reconnect  # a quick failure: out of budget
    assert leg.attempts == 1


def test_failed_attempts_after_a_healthy_session_still_spend_the_budget() -> None:
    leg = AiLeg(max_reconnects=1, healthy_s=10.0, now=0.0)
    leg.connected(0.0)
    assert leg.closed(20.0).attempt == 1
    # the reconnect attempt fails 5 s later: its session never lived 10 s
    assert not leg.closed(25.0).reconnect


@pytest.mark.parametrize("state", list(AiState))
def test_every_state_input_pair_is_in_the_table_or_refused(state: AiState) -> None:
    for inp in AiInput:
        leg = AiLeg(max_reconnects=5, healthy_s=60.0, now=0.0)
        leg.state = state
        allowed = TRANSITIONS.get((state, inp))
        if allowed is None:
            with pytest.raises(AiTransitionError):
                leg.connected(1.0) if inp is AiInput.CONNECTED else leg.closed(1.0)
            assert leg.state is state  # a refused input changes nothing
        else:
            leg.connected(1.0) if inp is AiInput.CONNECTED else leg.closed(1.0)
            assert leg.state in allowed


def test_the_refused_transitions_are_a_second_connect_and_anything_after_failing() -> None:
    refused = {(s, i) for s in AiState for i in AiInput} - set(TRANSITIONS)
    assert refused == {(AiState.UP, AiInput.CONNECTED), (AiState.FAILED, AiInput.CONNECTED),
                       (AiState.FAILED, AiInput.CLOSED)}
