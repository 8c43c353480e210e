"""WebRTC leg: which of the AI track's audio the caller hears.

Track audio (RTP, RFC 7587) carries no response id, so it is gated by the data channel's events:
it plays while a response is under way (``response.created``) or the server's track is playing
one (``output_audio_buffer.started`` .. ``stopped``/``cleared``: an answer's pauses are forwarded
too, and ``response.done`` comes long before the audio ends); it is muted after a barge-in until
the next response starts; silence between responses is idle and not played.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from bridge.codecs.g711 import is_quiet


class TrackFate(enum.Enum):
    PLAY = "play"
    MUTED = "muted"  # after a barge-in: late_track_frames_dropped
    IDLE = "idle"  # silence between responses: idle_track_frames


class Track:
    def __init__(self) -> None:
        self.item = "track"  # the assistant item track audio belongs to (from output_item.added)
        self.muted = False
        self.playing = False  # output_audio_buffer.started .. stopped/cleared

    def response_started(self) -> None:
        self.muted = False

    def barged_in(self) -> None:
        self.muted = True

    def item_added(self, item_id: str | None) -> None:
        if item_id is not None:
            self.item = item_id

    def buffer(self, state: str) -> None:
        """``output_audio_buffer.<state>``: the server's track started, stopped or was cleared."""
        self.playing = state == "started"

    def gate(self, frames: Sequence[bytes], responding: bool) -> TrackFate:
        """What becomes of decoded track frames (mu-law) with a response under way or not."""
        if self.muted:
            return TrackFate.MUTED
        if not responding and not self.playing and all(is_quiet(f) for f in frames):
            return TrackFate.IDLE
        return TrackFate.PLAY
