"""Per-direction meters: one call per frame feeds sequence, timestamp gaps, jitter and playout."""

from __future__ import annotations

from dataclasses import dataclass

from quality.jitter import InterarrivalJitter
from quality.playout import FixedPlayout, Playout
from quality.sequence import Arrival, SequenceTracker, TimestampGaps


@dataclass(frozen=True)
class DirectionFigures:
    """What was measured on one direction of a call; the E-model inputs come from here.

    ``jitter_ms`` and the playout figures are None when arrival times are unknown (a plain
    Twilio log replayed without timing): loss and gaps are still exact then.
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

    @property
    def effective_loss_pct(self) -> float:
        """Network loss plus jitter-buffer late discards, as a share of expected frames (Ppl)."""
        if not self.expected:
            return 0.0
        late = self.late_discards or 0
        return 100.0 * min(self.expected, self.lost + late) / self.expected


class DirectionMeter:
    """Meters for one media direction, in the order a receiver sees frames.

    ``update`` takes the frame's sequence number (Twilio ``chunk`` or RTP seq), its media
    timestamp and its arrival time, all in seconds; ``arrival_s=None`` means unknown.
    """

    __slots__ = ("_jitter", "_playout", "_seq", "_timed", "_ts", "last_missing")

    def __init__(self, playout: Playout | None = None, frame_s: float = 0.020,
                 reorder_window: int = 32, seq_modulus: int | None = None) -> None:
        self._seq = SequenceTracker(window=reorder_window, modulus=seq_modulus)
        self._ts = TimestampGaps(frame_s)
        self._jitter = InterarrivalJitter()
        self._playout: Playout = playout if playout is not None else FixedPlayout()
        self._timed = False
        self.last_missing = 0  # frames skipped just before the last one fed (0 unless a gap)

    def update(self, seq: int, media_ts_s: float, arrival_s: float | None) -> Arrival:
        arrival, self.last_missing = self._seq.update(seq)
        if arrival in (Arrival.DUPLICATE, Arrival.TOO_LATE):
            return arrival
        self._ts.update(media_ts_s)
        if arrival_s is not None:
            self._timed = True
            self._jitter.update(arrival_s, media_ts_s)
            self._playout.update(arrival_s, media_ts_s)
        return arrival

    def figures(self) -> DirectionFigures:
        s = self._seq.stats()
        timed = self._timed
        p = self._playout.stats() if timed else None
        return DirectionFigures(
            frames=s.received,
            expected=s.expected,
            lost=s.lost,
            loss_pct=s.loss.loss_pct,
            gaps=s.gaps,
            duplicates=s.duplicates,
            reordered=s.reordered,
            too_late=s.too_late,
            burst_r=s.loss.burst_r,
            max_loss_run=s.loss.max_run,
            timestamp_gaps=self._ts.gaps,
            missing_ms=self._ts.missing_s * 1000.0,
            jitter_ms=self._jitter.jitter_ms if timed else None,
            late_discards=p.late if p else None,
            late_pct=p.late_pct if p else None,
            buffer_delay_ms=p.mean_delay_ms if p else None,
        )
