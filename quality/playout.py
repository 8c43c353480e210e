"""Jitter-buffer (playout) models: how network jitter becomes delay and late loss.

Jitter hurts a call through exactly two things a receiver does about it: holding audio in a
buffer (added one-way delay, which feeds the E-model's T/Ta) and discarding packets that miss
their playout time (which add to the packet-loss probability Ppl). These models replay arrival
times through a buffer and report both. Times are seconds; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PlayoutStats:
    frames: int
    late: int
    late_pct: float
    mean_delay_s: float  # mean time a played frame waited in the buffer
    max_delay_s: float

    @property
    def mean_delay_ms(self) -> float:
        return self.mean_delay_s * 1000.0


class Playout(Protocol):
    def update(self, arrival_s: float, media_ts_s: float) -> bool: ...
    def stats(self) -> PlayoutStats: ...


class _Accumulator:
    __slots__ = ("frames", "late", "max_delay", "sum_delay")

    def __init__(self) -> None:
        self.frames = 0
        self.late = 0
        self.sum_delay = 0.0
        self.max_delay = 0.0

    def add(self, wait: float) -> bool:
        self.frames += 1
        if wait < 0.0:
            self.late += 1
            return False
        self.sum_delay += wait
        if wait > self.max_delay:
            self.max_delay = wait
        return True

    def stats(self) -> PlayoutStats:
        played = self.frames - self.late
        return PlayoutStats(
            frames=self.frames,
            late=self.late,
            late_pct=100.0 * self.late / self.frames if self.frames else 0.0,
            mean_delay_s=self.sum_delay / played if played else 0.0,
            max_delay_s=self.max_delay,
        )


class FixedPlayout:
    """A fixed-depth buffer anchored on the first frame, as a simple endpoint does.

    Frame i plays at a0 + depth + (m_i - m0); it is discarded if it arrives after that.
    """

    __slots__ = ("_acc", "_anchor", "depth_s")

    def __init__(self, depth_s: float = 0.060) -> None:
        if depth_s < 0:
            raise ValueError("depth must be >= 0")
        self.depth_s = depth_s
        self._anchor: float | None = None  # a0 - m0
        self._acc = _Accumulator()

    def update(self, arrival_s: float, media_ts_s: float) -> bool:
        """Feed one frame; return True if it is played, False if discarded as late."""
        if self._anchor is None:
            self._anchor = arrival_s - media_ts_s
        playout = media_ts_s + self._anchor + self.depth_s
        return self._acc.add(playout - arrival_s)

    def stats(self) -> PlayoutStats:
        return self._acc.stats()


class AdaptivePlayout:
    """Adaptive buffer after Ramjee et al. (IEEE INFOCOM 1994), algorithm 1.

    Transit n_i = arrival - media ts is smoothed as d = a*d + (1-a)*n and
    v = a*v + (1-a)*|d - n|; a frame plays at m_i + d + k*v, using the estimate from the
    frames before it (a = 0.998002, k = 4 in the paper). The target is clamped to
    [min_s, max_s] above the lowest transit seen. Real endpoints move the playout point only in
    silence; Twilio sends media continuously, so this model moves it every frame. The paper's
    a has a 500-frame (10 s) memory; so that a call's first seconds are not judged by an
    estimate still near its starting point, frame i uses min(a, i / (i + 1)) (a running mean
    until the memory fills, the usual warm-up of an exponential average).
    """

    __slots__ = ("_acc", "_d", "_min_transit", "_n", "_v", "alpha", "k", "max_s", "min_s")

    def __init__(self, alpha: float = 0.998002, k: float = 4.0, min_s: float = 0.020,
                 max_s: float = 0.200) -> None:
        self.alpha = alpha
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        self._d: float | None = None
        self._v = 0.0
        self._n = 0
        self._min_transit = 0.0
        self._acc = _Accumulator()

    def update(self, arrival_s: float, media_ts_s: float) -> bool:
        """Feed one frame; return True if it is played, False if discarded as late."""
        n = arrival_s - media_ts_s
        if self._d is None:
            self._d = self._min_transit = n
            self._v = 0.0
        target = self._d + self.k * self._v
        base = self._min_transit
        target = min(max(target, base + self.min_s), base + self.max_s)
        played = self._acc.add(target - n)
        self._n += 1
        a = min(self.alpha, self._n / (self._n + 1.0))
        self._d = a * self._d + (1.0 - a) * n
        self._v = a * self._v + (1.0 - a) * abs(self._d - n)
        if n < self._min_transit:
            self._min_transit = n
        return played

    def stats(self) -> PlayoutStats:
        return self._acc.stats()
