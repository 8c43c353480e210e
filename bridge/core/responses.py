"""The AI's responses as the caller meets them: the one under way, barge-in, and turn timing.

Realtime server VAD cancels a response when the caller starts speaking
(``input_audio_buffer.speech_started``); the bridge then clears what Twilio still holds and
truncates the assistant item at what was played (``conversation.item.truncate``, from the last
mark echoed: ``bridge/core/playback.py``), and drops the cancelled response's late deltas.
A turn runs from ``speech_stopped`` to the next response's first audio sent (``turn_to_sent``)
and to its first mark echoed as played (``turn_to_played``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bridge.core.counters import Count
from bridge.core.playback import Playback
from bridge.protocols import realtime as rt
from quality.latency import LatencyHistogram


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller spoke over the AI: Twilio is to be cleared, and the item cut where it was heard."""

    truncate: rt.ConversationItemTruncate | None  # None: nothing of an item was sent yet


@dataclass(frozen=True, slots=True)
class Stall:
    """A response under way sent no audio for ``silent_s`` (``ai_stall_s`` or more)."""

    response_id: str
    silent_s: float


class Responses:
    def __init__(self, playback: Playback, counters: Counter[str], stall_s: float) -> None:
        self.playback = playback
        self.counters = counters  # the call's own
        self.stall_s = stall_s
        self.current: str | None = None  # the response under way (response.created .. done)
        self.cancelled: set[str] = set()  # barged-in responses whose late audio is dropped
        self.last_audio_at: float | None = None  # for the stall timer
        self.speech_stopped_at: float | None = None  # the open turn's start
        self._awaiting_first_audio: str | None = None  # response id whose first frame sent starts a turn
        self._awaiting_first_play: dict[str, float] = {}  # response id -> turn start
        self.turn_to_sent = LatencyHistogram()
        self.turn_to_played = LatencyHistogram()

    # ------------------------------------------------------------------ lifecycle

    def created(self, response_id: str | None, now: float) -> None:
        self.current = response_id
        self.last_audio_at = now
        self.playback.start_response()
        if response_id is not None and self.speech_stopped_at is not None:
            self._awaiting_first_audio = response_id

    def done(self, response_id: str | None, status: str | None) -> None:
        if response_id == self.current:
            self.current = None
            self.last_audio_at = None
        if response_id is not None:
            self.cancelled.discard(response_id)
            if status == "cancelled":
                self.counters[Count.RESPONSES_CANCELLED] += 1
        self.counters[Count.RESPONSES] += 1

    def connection_lost(self) -> None:
        """The AI connection closed: its response will never finish."""
        self.current = None

    def is_cancelled(self, response_id: str) -> bool:
        return response_id in self.cancelled

    def delta(self, response_id: str, now: float) -> bool:
        """An audio delta of ``response_id`` arrived: False (counted) if a barge-in cut it off."""
        if response_id in self.cancelled:
            self.counters[Count.LATE_DELTAS_DROPPED] += 1
            return False
        self.last_audio_at = now
        return True

    def audio_arrived(self, now: float) -> None:
        """Audio of the response under way arrived (a WebRTC track carries no response id)."""
        self.last_audio_at = now

    # ------------------------------------------------------------------ stall timer

    def stall_deadline(self) -> float | None:
        if self.current is None or self.last_audio_at is None:
            return None
        return self.last_audio_at + self.stall_s

    def check_stall(self, now: float) -> Stall | None:
        """The stall the timer found at ``now``, counted once per silence."""
        if self.current is None or self.last_audio_at is None or now < self.last_audio_at + self.stall_s:
            return None
        stall = Stall(self.current, now - self.last_audio_at)
        self.counters[Count.AI_STALLS] += 1
        self.last_audio_at = None
        return stall

    # ------------------------------------------------------------------ barge-in and turns

    def speech_stopped(self, now: float) -> None:
        self.speech_stopped_at = now

    def speech_started(self) -> BargeIn | None:
        """The caller started speaking: a barge-in if anything of the AI is playing or under way."""
        self.speech_stopped_at = None
        if not (self.playback.has_unplayed or self.current is not None):
            return None
        self.counters[Count.BARGE_INS] += 1
        item, played_ms = self.playback.clear()
        truncate = (rt.ConversationItemTruncate(item_id=item, content_index=0, audio_end_ms=played_ms)
                    if item is not None else None)
        if self.current is not None:
            self.cancelled.add(self.current)
            self._awaiting_first_play.pop(self.current, None)
        return BargeIn(truncate)

    def audio_sent(self, response_id: str, now: float) -> None:
        """Frames of ``response_id`` went to Twilio: the first of an awaited answer closes ``turn_to_sent``."""
        if self._awaiting_first_audio == response_id and self.speech_stopped_at is not None:
            self.turn_to_sent.record(now - self.speech_stopped_at)
            self._awaiting_first_play[response_id] = self.speech_stopped_at
            self._awaiting_first_audio = None
            self.speech_stopped_at = None

    def played(self, response_id: str, now: float) -> None:
        """A mark of ``response_id`` was echoed as played: the first closes ``turn_to_played``."""
        turn_start = self._awaiting_first_play.pop(response_id, None)
        if turn_start is not None:
            self.turn_to_played.record(now - turn_start)
