"""Admission control: a full process says so instead of making every call on it bad.

Two limits: the number of live calls, and the event loop's lag (how late a 10 ms timer fires,
``bridge/live/loop_lag.py``) as the median of its last ``LAG_SAMPLES`` samples while the process has
calls: one garbage-collector pause (one sample) or a slow start-up with no calls refuses nothing,
but a loop the calls saturate refuses within about ``LAG_SAMPLES / 2`` samples (a second at 100 ms
of lag). Above either, ``/readyz`` answers 503, ``/twiml`` answers the fallback TwiML and a ``/media``
upgrade is refused; calls already admitted are untouched.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from statistics import median
from typing import Literal

Refusal = Literal["max_calls", "loop_lag", "draining"]

LAG_SAMPLES = 21
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
        self._samples: deque[float] = deque(maxlen=LAG_SAMPLES)  # loop lag, ms
        self._lagging = False

    def observe_lag(self, lag_s: float) -> None:
        """One loop-lag sample."""
        self._samples.append(lag_s * 1000.0)

    @property
    def lag_ms(self) -> float:
        """The median of the last ``LAG_SAMPLES`` loop-lag samples, ms (0 before any)."""
        return median(self._samples) if self._samples else 0.0

    def refusal(self, live_calls: int, draining: bool = False) -> Refusal | None:
        """Why a new call would be refused now, or None if it is welcome."""
        if draining:
            return "draining"
        if self.limits.max_calls and live_calls >= self.limits.max_calls:
            return "max_calls"
        ceiling = self.limits.loop_lag_ms
        if ceiling > 0 and live_calls > 0:
            lag = self.lag_ms
            if lag > ceiling:
                self._lagging = True
            elif lag < ceiling * LAG_RESUME_SHARE:
                self._lagging = False
            if self._lagging:
                return "loop_lag"
        return None
