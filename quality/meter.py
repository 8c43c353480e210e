"""Per-direction meters: one call per frame feeds the media clock, counters, jitter and playout."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from quality.jitter import InterarrivalJitter
from quality.playout import Playout, QuantilePlayout
from quality.sequence import Arrival, ClockStep, MediaClock, SequenceTracker


@dataclass(frozen=True)
class DirectionFigures:
    """What was measured on one direction of a call; the E-model inputs come from here.

    Loss is counted on the media clock (``MediaClock``): ``expected`` frame slots span the
    media time from the first frame to the last, and ``lost``, ``gaps`` (loss runs),
    ``max_loss_run`` and ``burst_r`` are over those slots. ``duplicates``, ``reordered``,
    ``too_late`` and ``chunk_gaps`` are anomalies of the message counter (Twilio's ``chunk``),
    which never skips on a healthy stream; a frame is never counted lost twice.
    ``timestamp_jumps`` and ``timestamp_backwards`` count bad media timestamps (not loss).

    ``jitter_ms`` is the mean of RFC 3550's J over the stream, ``jitter_max_ms`` its maximum
    and ``jitter_last_ms`` its value at the end (Wireshark's Mean, Max and last Jitter).
    They and the playout figures are None when arrival times are unknown (a plain Twilio log
    replayed without timing): loss and gaps are still exact then.
    """

    frames: int
    expected: int
    lost: int
    loss_pct: float
    gaps: int
    duplicates: int
    reordered: int
    too_late: int
    burst_r: float
    max_loss_run: int
    timestamp_gaps: int
    missing_ms: float
    jitter_ms: float | None
    late_discards: int | None
    late_pct: float | None
    buffer_delay_ms: float | None
    jitter_max_ms: float | None = None
    jitter_last_ms: float | None = None
    chunk_gaps: int = 0
    timestamp_jumps: int = 0
    timestamp_backwards: int = 0

    @property
    def effective_loss_pct(self) -> float:
        """Network loss plus frames the jitter buffer received too late, of expected frames (Ppl)."""
        if not self.expected:
            return 0.0
        late = self.late_discards or 0
        return 100.0 * min(self.expected, self.lost + late) / self.expected


DEFER_FRAMES = 50  # in-order frames metered together (1 s of 20 ms frames): see DirectionMeter


class DirectionMeter:
    """Meters for one Twilio media direction, in the order a receiver sees frames.

    ``update`` takes the frame's message counter (Twilio ``chunk``), its media timestamp and its
    arrival time, all in seconds; ``arrival_s=None`` means unknown. It returns the frame's fate
    on the media clock: ``GAP`` with ``last_missing`` frames missing before it, ``LATE`` for a
    reordered frame that fills an earlier hole, ``DUPLICATE``/``TOO_LATE`` for one not to use.
    ``last_clock`` says whether the timestamp itself was bad (``timestamp_jump``,
    ``timestamp_backwards``); a frame with a timestamp behind the stream while its counter is
    in order is not metered (``IN_ORDER`` is returned so its audio still goes on).

    Nearly every frame is the next one: the next counter, a timestamp step of at most 1.5 frames.
    Its fate is then known without the meters (``IN_ORDER``, nothing missing), so up to ``defer``
    such frames wait in two arrays and are metered together, in order, before any other frame and
    before every read of the figures: the same inputs in the same order, so the same figures. A
    second's frames metered together cost less than the same code run once a frame among every
    other call's work (benchmarks/README.md, 2026-12-07). ``defer=0`` meters every frame as it comes.
    """

    __slots__ = ("_backwards", "_chunks", "_clock", "_defer", "_jitter", "_next_seq", "_playout", "_seqs",
                 "_slots", "_step_max", "_timed", "_times", "_top_ts", "last_clock", "last_missing")

    def __init__(self, playout: Playout | None = None, frame_s: float = 0.020,
                 reorder_window: int = 32, max_gap_s: float = 10.0, defer: int = DEFER_FRAMES) -> None:
        self._chunks = SequenceTracker(window=reorder_window)
        self._slots = SequenceTracker(window=reorder_window)
        self._clock = MediaClock(frame_s, max_gap_s)
        self._jitter = InterarrivalJitter()
        self._playout: Playout = playout if playout is not None else QuantilePlayout()
        self._timed = False
        self._backwards = 0
        self.last_missing = 0  # frames missing just before the last one fed (0 unless a gap)
        self.last_clock: str | None = None
        self._defer = defer
        self._seqs = array("q")  # deferred frames: counters, and (media time, arrival) pairs
        self._times = array("d")
        self._next_seq: int | None = None  # the counter that is next in order once the deferred are metered
        self._top_ts = 0.0  # the media clock's highest timestamp then
        # The clock's own test for "the next slot", as it computes it (MediaClock.update); no longer
        # than max_gap_s, past which a step is a jump instead.
        self._step_max = min(1.5 * frame_s, max_gap_s)

    def in_order(self, seq: int, media_ts_s: float, arrival_s: float) -> bool:
        """``update`` of the next frame (the next counter, a timestamp step of at most 1.5 frames),
        whose fate is ``IN_ORDER``: deferred, and True. False, with nothing changed, for any other."""
        if seq != self._next_seq:
            return False
        step = media_ts_s - self._top_ts
        if not 0.0 <= step <= self._step_max:
            return False
        self.last_missing = 0
        self.last_clock = None
        self._next_seq = seq + 1
        self._top_ts = media_ts_s
        seqs = self._seqs
        seqs.append(seq)
        times = self._times
        times.append(media_ts_s)
        times.append(arrival_s)
        if len(seqs) >= self._defer:
            self._catch_up()
        return True

    def update(self, seq: int, media_ts_s: float, arrival_s: float | None) -> Arrival:
        if arrival_s is not None and self.in_order(seq, media_ts_s, arrival_s):
            return Arrival.IN_ORDER
        self._catch_up()
        arrival = self._update(seq, media_ts_s, arrival_s)
        top = self._chunks.highest
        self._next_seq = None if top is None else top + 1
        self._top_ts = self._clock.highest_ts or 0.0
        return arrival

    def _catch_up(self) -> None:
        """Meter the deferred frames, in order."""
        seqs = self._seqs
        if not seqs:
            return
        times = self._times
        n, clock, slots = len(seqs), self._clock, self._slots
        if self._chunks.highest == seqs[0] - 1 and slots.highest == clock.highest_slot:
            # Each frame is the next count and the next slot (a step of at most 1.5 frames is one
            # slot on, MediaClock.update), all timed: _update's every branch is known, so each
            # meter takes the run in one call. The test always holds for deferred frames; the loop
            # below is the general algorithm, kept for trackers that would disagree.
            self._chunks.advance(n)
            clock.advance(n, times[-2])
            slots.advance(n)
            self._timed = True
            self._jitter.update_run(times, clock.offset)
            self._playout.update_run(times, clock.offset)
        else:
            for i, seq in enumerate(seqs):
                self._update(seq, times[2 * i], times[2 * i + 1])
        del seqs[:]
        del times[:]

    def _update(self, seq: int, media_ts_s: float, arrival_s: float | None) -> Arrival:
        self.last_missing = 0
        self.last_clock = None
        by_count, _ = self._chunks.update(seq)
        if by_count in (Arrival.DUPLICATE, Arrival.TOO_LATE):
            return by_count
        step, slot, media_s = self._clock.update(media_ts_s)
        if step is ClockStep.JUMP:
            self.last_clock = "timestamp_jump"
            self._jitter.restart()
        elif step is ClockStep.EARLIER and by_count is not Arrival.LATE:
            self._backwards += 1
            self.last_clock = "timestamp_backwards"
            return Arrival.IN_ORDER
        arrival, self.last_missing = self._slots.update(slot)
        if arrival in (Arrival.DUPLICATE, Arrival.TOO_LATE):
            return arrival
        if arrival_s is not None:
            self._timed = True
            self._jitter.update(arrival_s, media_s)
            self._playout.update(arrival_s, media_s)
        return arrival

    @property
    def jitter(self) -> InterarrivalJitter:
        self._catch_up()
        return self._jitter

    def figures(self) -> DirectionFigures:
        self._catch_up()
        s = self._slots.stats()
        c = self._chunks.stats()
        timed = self._timed
        p = self._playout.stats() if timed else None
        j = self._jitter
        return DirectionFigures(
            frames=s.received,
            expected=s.expected,
            lost=s.lost,
            loss_pct=s.loss.loss_pct,
            gaps=s.gaps,
            duplicates=c.duplicates + s.duplicates,
            reordered=c.reordered,
            too_late=c.too_late + s.too_late,
            burst_r=s.loss.burst_r,
            max_loss_run=s.loss.max_run,
            timestamp_gaps=self._clock.gaps,
            missing_ms=self._clock.missing_s * 1000.0,
            jitter_ms=j.mean_ms if timed else None,
            late_discards=p.late if p else None,
            late_pct=p.late_pct if p else None,
            buffer_delay_ms=p.mean_delay_ms if p else None,
            jitter_max_ms=j.max_ms if timed else None,
            jitter_last_ms=j.last_ms if timed else None,
            chunk_gaps=c.gaps,
            timestamp_jumps=self._clock.jumps,
            timestamp_backwards=self._backwards,
        )
