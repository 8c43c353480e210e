"""Jitter-buffer (playout) models: how network jitter becomes delay and late loss.

Jitter hurts a call through exactly two things a receiver does about it: holding audio in a
buffer (added one-way delay, which feeds the E-model's T/Ta) and giving up on frames that miss
their playout time (concealed by the decoder, so they add to the packet-loss probability Ppl
with the codec's Bpl). These models replay arrival times through a buffer and report both.
Times are seconds; nothing here reads a clock.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

QUANTILE = 0.99  # the adaptive buffer holds this quantile of the delay variation: ~1 % late
MIN_DEPTH_S = 0.020  # and at least one frame, as a receiver that decodes whole frames does
WINDOW_FRAMES = 500  # 10 s of 20 ms frames: the delay variation the buffer sizes itself to
# Arrival stamps (and captures) are microseconds: a frame within this of its playout time is on time,
# so float rounding in arrival - media time never reads as lateness.
ON_TIME_S = 1e-6


@dataclass(frozen=True)
class PlayoutStats:
    frames: int
    late: int
    late_pct: float
    mean_delay_s: float  # mean playout delay above the fastest transit: what the buffer adds
    max_delay_s: float

    @property
    def mean_delay_ms(self) -> float:
        return self.mean_delay_s * 1000.0


class Playout(Protocol):
    def update(self, arrival_s: float, media_ts_s: float) -> bool: ...
    def update_run(self, times: Sequence[float], offset: float) -> None:
        """Frames as (media timestamp, arrival) pairs end to end, ``offset`` added to each
        timestamp: the same as :meth:`update` per frame."""
    def stats(self) -> PlayoutStats: ...


class _Accumulator:
    __slots__ = ("frames", "late", "max_delay", "sum_delay")

    def __init__(self) -> None:
        self.frames = 0
        self.late = 0
        self.sum_delay = 0.0
        self.max_delay = 0.0

    def add(self, late: bool, depth: float) -> bool:
        """One frame: whether it missed its playout time, and the buffer's depth above the
        fastest transit when it was due (the delay the buffer adds for it)."""
        self.frames += 1
        self.late += late
        self.sum_delay += depth
        if depth > self.max_delay:
            self.max_delay = depth
        return not late

    def stats(self) -> PlayoutStats:
        return PlayoutStats(
            frames=self.frames,
            late=self.late,
            late_pct=100.0 * self.late / self.frames if self.frames else 0.0,
            mean_delay_s=self.sum_delay / self.frames if self.frames else 0.0,
            max_delay_s=self.max_delay,
        )


class FixedPlayout:
    """A fixed-depth buffer anchored on the first frame, as a simple endpoint does.

    Frame i plays at a0 + depth + (m_i - m0); it is late if it arrives after that. Its depth
    above the fastest transit seen so far is what it adds to the delay.
    """

    __slots__ = ("_acc", "_anchor", "_min_transit", "depth_s")

    def __init__(self, depth_s: float = 0.060) -> None:
        if depth_s < 0:
            raise ValueError("depth must be >= 0")
        self.depth_s = depth_s
        self._anchor: float | None = None  # a0 - m0
        self._min_transit = math.inf
        self._acc = _Accumulator()

    def update(self, arrival_s: float, media_ts_s: float) -> bool:
        """Feed one frame; return True if it is played, False if it came too late."""
        transit = arrival_s - media_ts_s
        if self._anchor is None:
            self._anchor = transit
        self._min_transit = min(self._min_transit, transit)
        target = self._anchor + self.depth_s
        return self._acc.add(transit > target + ON_TIME_S, target - self._min_transit)

    def update_run(self, times: Sequence[float], offset: float) -> None:
        for i in range(0, len(times), 2):
            self.update(times[i + 1], times[i] + offset)

    def stats(self) -> PlayoutStats:
        return self._acc.stats()


class QuantilePlayout:
    """An adaptive buffer sized to the tail of the delay variation it has seen.

    Frame i plays at m_i + Q, Q the ``quantile`` of the transit times (arrival - media time)
    of the ``window`` frames before it; a frame arriving later is late and the receiver conceals
    it. Q is the k-th smallest of the n transits with k = ceil(q (n + 1)): for independent
    delays the next frame exceeds it with probability (n + 1 - k) / (n + 1) whatever their
    distribution (order-statistic coverage), so 1 - q of frames are late (nearest rank,
    k = ceil(q n), would make that 1.2 % at q = 0.99, n = 500). While the window holds fewer
    than 1 / (1 - q) frames, Q is their maximum. The buffer is never shallower than
    ``min_depth_s`` above the fastest transit, so a path with next to no jitter is not judged
    by microseconds.

    What the buffer adds to the mouth-to-ear delay is Q above the fastest transit in the window
    (the network's own delay is counted elsewhere); a window relative to its own minimum
    follows clock drift. This is algorithm 4 of Moon, Kurose and Towsley, "Packet audio playout
    delay adjustment: performance bounds and algorithms" (Multimedia Systems 6, 1998): playout
    delay at a percentile of the delays of the last w packets; WebRTC's NetEq likewise sets its
    target level from a quantile of its relative-delay histogram. Real endpoints move the
    playout point in silences or by time-stretching; Twilio sends media continuously, so this
    one moves it every frame.
    """

    __slots__ = ("_acc", "_pos", "_ring", "_sorted", "min_depth_s", "quantile", "window")

    def __init__(self, quantile: float = QUANTILE, window: int = WINDOW_FRAMES,
                 min_depth_s: float = MIN_DEPTH_S) -> None:
        if not 0.0 < quantile < 1.0 or window < 1 or min_depth_s < 0.0:
            raise ValueError("quantile must be within (0, 1), window >= 1 and min_depth_s >= 0")
        self.quantile = quantile
        self.window = window
        self.min_depth_s = min_depth_s
        # The window's transits sorted, and in arrival order (a ring): raw doubles, 8 KB a call
        # at 500 frames, where lists of float objects took three times that in scattered memory.
        self._sorted = array("d")
        self._ring = array("d", bytes(8 * window))
        self._pos = 0  # the ring's next slot: the oldest transit once the window is full
        self._acc = _Accumulator()

    def update(self, arrival_s: float, media_ts_s: float) -> bool:
        """Feed one frame; return True if it is played, False if it came too late."""
        transit = arrival_s - media_ts_s
        w = self._sorted
        if w:
            n = len(w)
            q = max(w[min(n, math.ceil(self.quantile * (n + 1))) - 1], w[0] + self.min_depth_s)
            played = self._acc.add(transit > q + ON_TIME_S, q - w[0])
        else:
            played = self._acc.add(False, self.min_depth_s)
        bisect.insort(w, transit)
        ring, pos = self._ring, self._pos
        if len(w) > self.window:
            del w[bisect.bisect_left(w, ring[pos])]
        ring[pos] = transit
        self._pos = pos + 1 if pos + 1 < self.window else 0
        return played

    def update_run(self, times: Sequence[float], offset: float) -> None:
        """:meth:`update` per frame, unrolled: once the window is full its quantile's rank is
        fixed, and the accumulator's sums are kept in locals until the end."""
        w, ring, window, pos, acc = self._sorted, self._ring, self.window, self._pos, self._acc
        q_rank, min_depth = self.quantile, self.min_depth_s
        full_k = min(window, math.ceil(q_rank * (window + 1))) - 1
        frames, late, sum_delay, max_delay = acc.frames, acc.late, acc.sum_delay, acc.max_delay
        insort, bisect_left = bisect.insort, bisect.bisect_left
        for i in range(0, len(times), 2):
            transit = times[i + 1] - (times[i] + offset)
            n = len(w)
            if n:
                k = full_k if n == window else min(n, math.ceil(q_rank * (n + 1))) - 1
                low = w[0]
                q = max(w[k], low + min_depth)
                depth = q - low
                late += transit > q + ON_TIME_S
            else:
                depth = min_depth
            frames += 1
            sum_delay += depth
            if depth > max_delay:
                max_delay = depth
            insort(w, transit)
            if n == window:  # one more than the window now: the oldest leaves
                del w[bisect_left(w, ring[pos])]
            ring[pos] = transit
            pos = pos + 1 if pos + 1 < window else 0
        self._pos = pos
        acc.frames, acc.late, acc.sum_delay, acc.max_delay = frames, late, sum_delay, max_delay

    def stats(self) -> PlayoutStats:
        return self._acc.stats()


def buffer_for_jitter(jitter_ms: float, quantile: float = QUANTILE,
                      min_depth_s: float = MIN_DEPTH_S) -> tuple[float, float]:
    """(buffer delay ms, late %) of :class:`QuantilePlayout` when only the RFC 3550 jitter J is
    known (``mosbridge mos --jitter-ms``): the delay variation taken as exponential with mean J
    (for independent exponential delays E|D| is the mean, which J estimates), whose quantile q
    is J ln(1 / (1 - q)), never less than the minimum depth; a frame is late with the tail
    probability exp(-buffer / J) (1 - q unless the floor holds more). No jitter: no buffer
    beyond what the given delay already includes, (0, 0)."""
    if jitter_ms <= 0.0:
        return 0.0, 0.0
    buffer_ms = max(1000.0 * min_depth_s, jitter_ms * math.log(1.0 / (1.0 - quantile)))
    return buffer_ms, 100.0 * math.exp(-buffer_ms / jitter_ms)
