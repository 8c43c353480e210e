"""When calls arrive in a fixed-rate load run: Poisson or evenly spaced, from a seeded generator.

Poisson arrivals (exponential gaps with mean 1/rate) are what independent callers produce, the
usual model of call arrivals (Erlang's, ITU-T E.500 traffic); evenly spaced ones give the same mean
with no bursts. Over ``duration`` the Poisson count has mean and variance rate × duration.
"""

from __future__ import annotations

import math
import random

ARRIVALS = ("poisson", "even")
POISSON_SIGMAS = 4.0  # the count stays within 4 standard deviations of its mean but once in ~16 000 runs


def arrival_times(rate: float, duration_s: float, kind: str, rng: random.Random) -> list[float]:
    """Arrival times in [0, duration_s), s after the start, ascending."""
    if rate <= 0 or duration_s <= 0:
        return []
    if kind == "even":
        return [k / rate for k in range(math.ceil(rate * duration_s)) if k / rate < duration_s]
    if kind != "poisson":
        raise ValueError(f"unknown arrival process {kind!r}: one of {ARRIVALS}")
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def count_bounds(rate: float, duration_s: float, kind: str) -> tuple[int, int]:
    """The arrival counts the generator produces: exactly ceil(rate × duration) evenly spaced
    arrivals; for Poisson, rate × duration within ``POISSON_SIGMAS`` standard deviations."""
    mean = rate * duration_s
    if kind == "even":
        n = math.ceil(mean)
        return n, n
    spread = POISSON_SIGMAS * math.sqrt(mean)
    return max(0, math.floor(mean - spread)), math.ceil(mean + spread)
