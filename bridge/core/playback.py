"""What the caller has heard of the AI's audio, known only from Twilio's mark echoes.

Twilio echoes a ``mark`` once the audio sent before it has played, and echoes every pending
mark at once when it receives ``clear`` (those echoes do NOT mean played). Each mark is named
uniquely and remembers how much of its assistant item had been sent when it was queued, so the
last mark echoed before a barge-in gives ``audio_end_ms`` exactly, without wall-clock guessing.

The same tracker models Twilio's playout of what we send, frame by frame, to find underruns:
AI audio that arrives slower than it plays leaves audible gaps in the middle of a response.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quality.latency import LatencyHistogram

FRAME_S = 0.020
BYTES_PER_S = 8000  # mu-law at 8 kHz


class MarkFate(enum.Enum):
    PLAYED = "played"
    CLEARED = "cleared"  # echoed because of a clear: not played
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str
    item_id: str
    response_id: str
    audio_end_ms: int
    sent_at: float


class Playback:
    def __init__(self) -> None:
        self._pending: dict[str, _Mark] = {}
        self._cleared: set[str] = set()
        self._sent_ms: dict[str, float] = {}
        self._played_ms: dict[str, int] = {}
        self._count = 0
        self._play_end: float | None = None
        self._mid_response = False
        self.last_item: str | None = None
        self.bytes = 0
        self.underruns = 0
        self.underrun_frames = 0
        self.underrun_s = 0.0
        self.mark_delay = LatencyHistogram()

    def start_response(self) -> None:
        """The next frames open a new talkspurt: silence before them is not an underrun."""
        self._mid_response = False

    @property
    def frames(self) -> int:
        """20 ms frames' worth of audio sent so far."""
        return self.bytes // 160

    def frames_sent(self, item_id: str, frames: int, now: float) -> None:
        self.audio_sent(item_id, frames * 160, now)

    def audio_sent(self, item_id: str, nbytes: int, now: float) -> None:
        """``nbytes`` of mu-law (any length: Twilio plays what it gets, in order) sent now."""
        if nbytes <= 0:
            return
        self.bytes += nbytes
        if item_id != self.last_item:
            self._forget_old_items(keep=item_id)
        self.last_item = item_id
        self._sent_ms[item_id] = self._sent_ms.get(item_id, 0.0) + nbytes * 1000 / BYTES_PER_S
        end = self._play_end
        if end is None or now >= end:
            if self._mid_response and end is not None:
                gap = now - end
                slots = round(gap / FRAME_S)
                if slots >= 1:
                    self.underruns += 1
                    self.underrun_frames += slots
                    self.underrun_s += gap
            start = now
        else:
            start = end
        self._play_end = start + nbytes / BYTES_PER_S
        self._mid_response = True

    def _forget_old_items(self, keep: str) -> None:
        """Only recent items can still be truncated: keep memory flat over hours-long calls."""
        pending = {m.item_id for m in self._pending.values()}
        for table in (self._sent_ms, self._played_ms):
            for old in [k for k in table if k != keep and k != self.last_item and k not in pending]:
                del table[old]

    def new_mark(self, item_id: str, response_id: str, now: float) -> str:
        """Name a mark for the audio sent so far; the name is unique for the call."""
        self._count += 1
        name = f"m{self._count}"
        self._pending[name] = _Mark(name, item_id, response_id, int(self._sent_ms.get(item_id, 0.0)), now)
        return name

    def mark_echoed(self, name: str, now: float) -> tuple[MarkFate, str | None]:
        """Return the mark's fate and, if played, its response id."""
        if name in self._cleared:
            self._cleared.discard(name)
            return MarkFate.CLEARED, None
        mark = self._pending.pop(name, None)
        if mark is None:
            return MarkFate.UNKNOWN, None
        self._played_ms[mark.item_id] = max(self._played_ms.get(mark.item_id, 0), mark.audio_end_ms)
        self.mark_delay.record(now - mark.sent_at)
        return MarkFate.PLAYED, mark.response_id

    @property
    def has_unplayed(self) -> bool:
        return bool(self._pending)

    def played_ms(self, item_id: str) -> int:
        return self._played_ms.get(item_id, 0)

    def clear(self) -> tuple[str | None, int]:
        """Twilio was told to clear: pending marks no longer mean played. Return the item to
        truncate and the audio the caller heard of it, in ms."""
        self._cleared.update(self._pending)
        self._pending.clear()
        self._play_end = None
        self._mid_response = False
        item = self.last_item
        return item, (self.played_ms(item) if item is not None else 0)
