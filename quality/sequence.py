"""Gaps, duplicates and reordering from sequence numbers and media timestamps.

Twilio Media Streams numbers media messages with ``chunk`` (1, 2, 3 ... per track) and
stamps them with ``timestamp`` (ms since the stream started); RTP uses a 16-bit sequence
number that wraps (RFC 3550 A.1). Twilio's counters never skip (they count its messages on one
TCP stream): its loss is a step in the timestamp, which :class:`MediaClock` turns into frame
slots. Slots and RTP numbers go through :class:`SequenceTracker`; packet fates are finalised
once they fall out of the reorder window and handed to a :class:`LossCounter`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quality.loss import LossCounter, LossStats

RTP_MAX_DROPOUT, RTP_MAX_MISORDER = 3000, 100  # RFC 3550 A.1


class Arrival(enum.Enum):
    IN_ORDER = "in_order"
    GAP = "gap"  # in order, but after one or more missing packets
    LATE = "late"  # a packet earlier reported missing: reordered, not lost
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"  # older than the reorder window: its fate was already counted


@dataclass(frozen=True)
class SequenceStats:
    received: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    too_late: int
    gaps: int  # loss runs: holes that stayed holes (a reordered frame that fills one is no gap)
    loss: LossStats


class SequenceTracker:
    """Classifies each arriving sequence number and keeps loss in media order.

    ``modulus`` unwraps wrapping counters (65536 for RTP); Twilio chunks do not wrap.
    A packet counts as lost only when it has not arrived by the time ``window`` newer packets
    have, so a reordered packet is never counted as lost.
    """

    def __init__(self, window: int = 32, modulus: int | None = None) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self._window = window
        self._modulus = modulus
        self._highest: int | None = None
        self._first: int | None = None
        self._pending: dict[int, bool] = {}  # seq -> received, for seqs not yet finalised
        self._finalised_upto: int | None = None  # every seq <= this has its fate counted
        self._seen_recent: set[int] = set()
        self._counter = LossCounter()
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        self.too_late = 0

    @property
    def highest(self) -> int | None:
        """The highest (unwrapped) number seen so far; None before the first."""
        return self._highest

    def _unwrap(self, seq: int) -> int:
        if self._modulus is None or self._highest is None:
            return seq
        m = self._modulus
        delta = (seq - self._highest) % m
        if delta >= m // 2:
            delta -= m
        return self._highest + delta

    def is_restart(self, seq: int) -> bool:
        """Whether ``seq`` means the source started over rather than lost or reordered packets:
        a wrapping number that jumps ahead by RTP_MAX_DROPOUT or more, or back by more than
        RTP_MAX_MISORDER (RFC 3550 A.1). Never for counters that do not wrap."""
        if self._modulus is None or self._highest is None:
            return False
        delta = (seq - self._highest) % self._modulus
        return RTP_MAX_DROPOUT <= delta <= self._modulus - RTP_MAX_MISORDER

    def update(self, seq: int) -> tuple[Arrival, int]:
        """Feed one arriving sequence number; return its classification and the missing count.

        The count is the number of packets skipped (for GAP), otherwise 0.
        """
        s = self._unwrap(seq)
        h = self._highest
        if h is not None and s == h + 1:  # the common case: the next one, nothing missing
            self._pending[s] = True
            self._highest = s
            self.received += 1
            cut = s - self._window
            done = self._finalised_upto
            if done is not None and cut == done + 1:
                self._counter.update(not self._pending.pop(cut, False))
                self._finalised_upto = cut
            elif done is not None and cut > done:
                self._finalise(cut)
            return Arrival.IN_ORDER, 0
        if self._highest is None:
            self._highest = self._first = s
            self._finalised_upto = s - 1
            self._pending[s] = True
            self.received += 1
            return Arrival.IN_ORDER, 0
        assert self._finalised_upto is not None
        if s > self._highest:
            h = self._highest
            missing = s - h - 1
            cut = s - self._window  # every seq <= cut gets its fate counted now
            if missing:
                start = h + 1
                if cut > h:  # a jump wider than the window: count the far losses in O(1)
                    self._finalise(h)
                    self._counter.update_many(True, cut - h)
                    self._finalised_upto = cut
                    start = cut + 1
                for k in range(start, s):
                    self._pending[k] = False
            self._pending[s] = True
            self._highest = s
            self.received += 1
            self._finalise(cut)
            return (Arrival.GAP, missing) if missing else (Arrival.IN_ORDER, 0)
        if s <= self._finalised_upto:
            self.too_late += 1
            return Arrival.TOO_LATE, 0
        if self._pending.get(s, False):
            self.duplicates += 1
            return Arrival.DUPLICATE, 0
        self._pending[s] = True
        self.received += 1
        self.reordered += 1
        return Arrival.LATE, 0

    def advance(self, n: int) -> None:
        """``n`` numbers in a row after the highest, each the next one: what ``n`` calls of
        :meth:`update` that all return ``IN_ORDER`` do (the same state), in one."""
        h = self._highest
        if h is None:
            raise ValueError("advance needs a first number fed through update")
        pending = self._pending
        for s in range(h + 1, h + n + 1):
            pending[s] = True
        self._highest = h + n
        self.received += n
        self._finalise(h + n - self._window)

    def _finalise(self, upto: int) -> None:
        """Count the fates of every number up to ``upto``, in order, a run of one fate at a time
        (``LossCounter.update_many`` is the same as its packets one by one)."""
        done = self._finalised_upto
        assert done is not None
        if upto <= done:
            return
        pop, counter = self._pending.pop, self._counter
        fate, run = False, 0
        for k in range(done + 1, upto + 1):
            lost = not pop(k, False)
            if lost is fate:
                run += 1
            else:
                counter.update_many(fate, run)
                fate, run = lost, 1
        counter.update_many(fate, run)
        self._finalised_upto = upto

    def stats(self) -> SequenceStats:
        """Snapshot including the still-pending window (missing packets there count as lost)."""
        counter = self._counter
        pending_lost = 0
        if self._highest is not None and self._finalised_upto is not None:
            # Finalise on a copy so a mid-call snapshot does not change later results.
            counter = self._counter.copy()
            for k in range(self._finalised_upto + 1, self._highest + 1):
                got = self._pending.get(k, False)
                counter.update(not got)
                pending_lost += not got
        loss = counter.stats()
        expected = 0 if self._highest is None or self._first is None else self._highest - self._first + 1
        return SequenceStats(
            received=self.received,
            expected=expected,
            lost=loss.lost,
            duplicates=self.duplicates,
            reordered=self.reordered,
            too_late=self.too_late,
            gaps=sum(loss.runs.values()),
            loss=loss,
        )


class ClockStep(enum.Enum):
    NEXT = "next"  # the frame after the highest so far, or after a gap
    EARLIER = "earlier"  # behind the highest: placed in its own earlier slot
    JUMP = "jump"  # more than max_gap_s either way: a restarted or corrupt clock, re-anchored


class MediaClock:
    """Media timestamps to frame slots, the loss signal of Twilio Media Streams.

    Twilio's ``sequenceNumber`` and ``chunk`` count the messages Twilio sends over one TCP
    stream, so they never skip; audio lost before Twilio (the carrier's RTP leg) shows only as a
    ``timestamp`` step longer than one frame (Twilio Media Streams docs, "media" message). A step
    ``s`` from the highest timestamp so far places the frame ``n`` slots on:
    ``s <= 1.5`` frames is the next slot (stamps need not be exact multiples of 20 ms);
    up to ``max_gap_s`` it is ``round(s / frame)`` slots, ``n - 1`` of them missing. A step of
    more than ``max_gap_s`` either way is a discontinuity (``jumps``): the clock re-anchors on it
    as the next slot and nothing counts as lost, so a corrupt or restarted clock never reads as
    minutes of loss, and one absurd value cannot leave every later frame "behind" it. A shorter
    step backwards places the frame in its earlier slot; whether that is a reordered frame or a
    bad timestamp is the caller's to judge (the message counter says which).

    :meth:`update` also returns the frame's media time on a continuous axis (the raw timestamp
    plus the offset of any re-anchoring), which is what jitter and playout take.
    """

    __slots__ = ("_frame", "_highest_slot", "_highest_ts", "_max_gap", "_offset", "gaps", "jumps",
                 "missing_frames", "missing_s")

    def __init__(self, frame_s: float = 0.020, max_gap_s: float = 10.0) -> None:
        self._frame = frame_s
        self._max_gap = max_gap_s
        self._highest_ts: float | None = None
        self._highest_slot = 0
        self._offset = 0.0
        self.gaps = 0
        self.missing_frames = 0
        self.missing_s = 0.0
        self.jumps = 0

    @property
    def highest_ts(self) -> float | None:
        """The highest media timestamp the clock is anchored on (seconds); None before the first."""
        return self._highest_ts

    @property
    def highest_slot(self) -> int:
        return self._highest_slot

    @property
    def offset(self) -> float:
        """What :meth:`update` adds to a timestamp for its continuous media time (re-anchorings)."""
        return self._offset

    def advance(self, n: int, media_ts_s: float) -> None:
        """``n`` frames in a row, each a step of at most 1.5 frames (``NEXT``, nothing missing),
        the last at ``media_ts_s``: what their ``update`` calls do, in one."""
        if self._highest_ts is None:
            raise ValueError("advance needs a first timestamp fed through update")
        self._highest_ts = media_ts_s
        self._highest_slot += n

    def update(self, media_ts_s: float) -> tuple[ClockStep, int, float]:
        """Feed one media timestamp in seconds; return (what the step was, the frame's slot,
        its continuous media time)."""
        top = self._highest_ts
        if top is None:
            self._highest_ts = media_ts_s
            return ClockStep.NEXT, 0, media_ts_s
        step = media_ts_s - top
        if -self._max_gap <= step < 0.0:
            return ClockStep.EARLIER, self._highest_slot + round(step / self._frame), media_ts_s + self._offset
        if abs(step) > self._max_gap:
            self.jumps += 1
            self._offset += self._frame - step
            self._highest_ts = media_ts_s
            self._highest_slot += 1
            return ClockStep.JUMP, self._highest_slot, media_ts_s + self._offset
        n = 1 if step <= 1.5 * self._frame else round(step / self._frame)
        if n > 1:
            self.gaps += 1
            self.missing_frames += n - 1
            self.missing_s += step - self._frame
        self._highest_ts = media_ts_s
        self._highest_slot += n
        return ClockStep.NEXT, self._highest_slot, media_ts_s + self._offset
