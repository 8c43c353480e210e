"""The tenant MOS alert: sustained, fire once, resolve once with hysteresis, no flapping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from quality.alerting import OK, AlertRule, AlertState, Phase, Transition, step

RULE = AlertRule(threshold=4.0, window_s=300.0, for_s=300.0, hysteresis=0.1, min_calls=3)


def run(rule: AlertRule, evaluations: Sequence[tuple[float, int, float | None]]) -> list[tuple[float, Transition]]:
    state = OK
    out = []
    for now, calls, mean in evaluations:
        state, t = step(rule, state, calls, mean, now)
        if t is not None:
            out.append((now, t))
    return out


def test_fires_after_five_minutes_below_not_before() -> None:
    evals = [(t, 10, 3.8) for t in range(0, 301, 15)]
    assert run(RULE, evals[:-1]) == []  # 0..285 s: pending, not yet sustained for 300 s
    assert run(RULE, evals) == [(300, Transition.FIRED)]


def test_fires_once_and_resolves_once_with_hysteresis() -> None:
    evals = [(t, 10, 3.5) for t in range(0, 601, 15)]
    evals += [(615, 10, 4.05), (630, 10, 3.98), (645, 10, 4.09)]  # above 4.0 but under 4.1: still firing
    evals += [(660, 10, 4.1), (675, 10, 4.3), (690, 10, 3.99)]  # resolved at 4.1; then pending again
    assert run(RULE, evals) == [(300, Transition.FIRED), (660, Transition.RESOLVED)]


def test_a_recovery_during_pending_restarts_the_clock() -> None:
    evals = [(0, 5, 3.9), (150, 5, 3.9), (165, 5, 4.0), (180, 5, 3.9), (465, 5, 3.9), (480, 5, 3.9)]
    assert run(RULE, evals) == [(480, Transition.FIRED)]


def test_too_few_calls_neither_confirm_nor_resolve() -> None:
    assert run(RULE, [(t, 2, 1.5) for t in range(0, 1000, 15)]) == []
    state, t = step(RULE, AlertState(Phase.FIRING, 100.0), 1, 4.4, 500.0)
    assert state.phase is Phase.FIRING and t is None  # one good call does not resolve an incident
    state, t = step(RULE, AlertState(Phase.PENDING, 100.0), 0, None, 200.0)
    assert state == OK and t is None  # a gap breaks "sustained"


def test_zero_for_fires_at_the_first_low_window() -> None:
    assert run(AlertRule(for_s=0.0), [(0, 3, 3.9)]) == [(0, Transition.FIRED)]


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        AlertRule(min_calls=0)
    with pytest.raises(ValueError):
        AlertRule(window_s=0)
