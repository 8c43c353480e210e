"""Admission control: a full pod says so instead of making every call on it bad.

Two limits: the number of live calls, and the event loop's lag (how late a 10 ms timer fires,
``bridge/live/loop_lag.py``) smoothed over its last hundred or so samples (a second of an idle loop),
so one garbage-collector pause does not Above either, ``/readyz`` answers 503, ``/twiml`` answers
the fallback TwiML and a ``/media`` upgrade is refused; calls already admitted are untouched. Pure:
time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Refusal = Literal["max_calls", "loop_lag", "draining"]

LAG_SAMPLE_WEIGHT = 0.01  # an exponential moving mean over ~100 samples
# once over the lag ceiling, ready again only below this share of it (no flapping at the edge)
LAG_RESUME_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """``max_calls`` 0 = no call limit; ``loop_lag_ms`` 0 = no lag ceiling."""

    max_calls: int
    loop_lag_ms: float


class Admission:
    """Decides, at a given time, whether the process takes another call, and why not."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.lag_ms = 0.0  # exponentially weighted moving mean of the loop lag
        self._lagging = False

    def observe_lag(self, lag_s: float) -> None:
        """One loop-lag sample."""
        self.lag_ms += LAG_SAMPLE_WEIGHT * (lag_s * 1000.0 - self.lag_ms)
        ceiling = self.limits.loop_lag_ms
        if ceiling > 0:
            if self.lag_ms > ceiling:
                self._lagging = True
            elif self.lag_ms < ceiling * LAG_RESUME_SHARE:
                self._lagging = False

    def refusal(self, live_calls: int, draining: bool = False) -> Refusal | None:
        """Why a new call would be refused now, or None if it is welcome."""
        if draining:
            return "draining"
        if self.limits.max_calls and live_calls >= self.limits.max_calls:
            return "max_calls"
        if self._lagging:
            return "loop_lag"
        return None
