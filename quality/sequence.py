"""Gaps, duplicates and reordering from sequence numbers and media timestamps.

Twilio Media Streams numbers media messages with ``chunk`` (1, 2, 3 ... per track) and
stamps them with ``timestamp`` (ms since the stream started); RTP uses a 16-bit sequence
number that wraps (RFC 3550 A.1). Both go through :class:`SequenceTracker`; packet fates are
finalised once they fall out of the reorder window and handed to a :class:`LossCounter`.
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

    def _finalise(self, upto: int) -> None:
        assert self._finalised_upto is not None
        for k in range(self._finalised_upto + 1, upto + 1):
            self._counter.update(not self._pending.pop(k, False))
        if upto > self._finalised_upto:
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


class TimestampGaps:
    """Detects gaps in a media-timestamp series with a nominal frame duration (Twilio: 20 ms).

    A step of more than 1.5 frames counts as a gap of round(step / frame) - 1 missing frames;
    a step backwards is a timestamp regression (reorder or stream reset).
    """

    __slots__ = ("_frame", "_prev", "gaps", "missing_frames", "missing_s", "regressions")

    def __init__(self, frame_s: float = 0.020) -> None:
        self._frame = frame_s
        self._prev: float | None = None
        self.gaps = 0
        self.missing_frames = 0
        self.missing_s = 0.0
        self.regressions = 0

    def update(self, media_ts_s: float) -> int:
        """Feed one media timestamp in seconds; return the frames missing before it."""
        prev = self._prev
        if prev is None:
            self._prev = media_ts_s
            return 0
        step = media_ts_s - prev
        if step < 0:
            self.regressions += 1
            return 0
        self._prev = media_ts_s
        if step <= 1.5 * self._frame:
            return 0
        missing = round(step / self._frame) - 1
        self.gaps += 1
        self.missing_frames += missing
        self.missing_s += step - self._frame
        return missing
