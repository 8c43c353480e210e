"""The tenant MOS alert as a pure state machine: fire once, resolve once, with hysteresis.

The rule (``shared/seed``): a tenant's MOS below 4.0 sustained for 5 minutes is an incident.
Made precise: at each evaluation the tenant's mean MOS over the calls that ended in the last
``window_s`` is compared with ``threshold``. A window with fewer than ``min_calls`` calls has no
mean worth acting on. The alert is *pending* from the first evaluation that saw the mean below
the threshold, and *fires* once every evaluation since has seen it below for ``for_s`` seconds
(as Prometheus' ``for``). A firing alert *resolves* only when the mean is back at or above
``threshold + hysteresis``, so a mean hovering at the threshold does not flap. A window without
enough calls neither confirms nor resolves: a pending alert starts over, a firing one holds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Phase(enum.Enum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Transition(enum.Enum):
    FIRED = "fired"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertRule:
    threshold: float = 4.0
    window_s: float = 300.0
    for_s: float = 300.0
    hysteresis: float = 0.1
    min_calls: int = 3
    name: str = "tenant_mos_low"

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.for_s < 0 or self.hysteresis < 0 or self.min_calls < 1:
            raise ValueError(f"invalid alert rule {self}")

    @property
    def resolve_at(self) -> float:
        return self.threshold + self.hysteresis


@dataclass(frozen=True)
class AlertState:
    phase: Phase = Phase.OK
    since: float | None = None  # when it became pending, or when it fired


OK = AlertState()


def step(rule: AlertRule, state: AlertState, calls: int, mean: float | None,
         now: float) -> tuple[AlertState, Transition | None]:
    """One evaluation at ``now`` with the window's call count and mean MOS."""
    if calls < rule.min_calls or mean is None:
        return (OK if state.phase is Phase.PENDING else state), None
    if state.phase is Phase.FIRING:
        if mean >= rule.resolve_at:
            return OK, Transition.RESOLVED
        return state, None
    if mean >= rule.threshold:
        return OK, None
    since = state.since if state.phase is Phase.PENDING and state.since is not None else now
    if now - since >= rule.for_s:
        return AlertState(Phase.FIRING, now), Transition.FIRED
    return AlertState(Phase.PENDING, since), None
