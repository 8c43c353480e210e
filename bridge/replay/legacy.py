"""Old-capture rules: what replay needs for captures whose inputs the live core no longer takes.

Captures of the WebRTC leg (``opus16k``) made before the bridge decoded the leg's RTP itself
carry ``ai_audio_in`` lines (``bridge/protocols/capture.py``): 20 ms of the AI's audio as aiortc's
track decoded it, 48 kHz mono 16-bit PCM. They replay here with that version's rules, so such a
capture still yields the report its live call wrote. Version-1 captures may hold them (and any
WebRTC capture of that version replays by these rules); version 2, which the bridge writes now,
never does and replays with the live core's own ``apply``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge.codecs import CodecError, Transcoder
from bridge.codecs.errors import OddPcmLength, UnsupportedFormat
from bridge.codecs.opus16k import CALLER_RATE, Opus16kTranscoder
from bridge.codecs.resamplers import Downsampler
from bridge.core import inputs
from bridge.core.call import CallCore, guarded
from bridge.core.config import CallConfig
from bridge.core.counters import Count

TRACK_RATE = 48000  # what a WebRTC stack's Opus decoder hands out (RFC 7587: the RTP clock is 48 kHz)


class TrackPcmTranscoder(Opus16kTranscoder):
    """opus16k that also takes 48 kHz PCM a WebRTC stack decoded down to 8 kHz, with the
    same filter design as the rest of the chain (factor 6, 1.25 ms)."""

    def __init__(self, bitrate: int = 24000) -> None:
        super().__init__(bitrate)
        self._down_track = Downsampler(TRACK_RATE // CALLER_RATE)

    def track_to_caller(self, pcm: bytes) -> list[bytes]:
        """Mono 16-bit little-endian PCM at 48 kHz from the WebRTC track in; exact mu-law frames out."""
        if len(pcm) % 2:
            self.errors += 1
            raise OddPcmLength(f"track audio of {len(pcm)} bytes is not whole 16-bit samples")
        return self._emit(self._down_track.process(np.frombuffer(pcm, dtype="<i2")), concealed=False)

    def _reset_caller_side(self) -> None:
        super()._reset_caller_side()  # a flush (response end, barge-in) resets the track's filter too
        self._down_track.reset()


def _track_to_caller(transcoder: Transcoder, pcm: bytes) -> list[bytes]:
    if not isinstance(transcoder, TrackPcmTranscoder):
        raise UnsupportedFormat(f"{transcoder.fmt} does not travel over the WebRTC leg")
    return transcoder.track_to_caller(pcm)


@guarded
def receive_ai_audio(core: CallCore, pcm: bytes, now: float) -> None:
    """One ``ai_audio_in`` line: the gate of that version (muted after a barge-in; all-zero PCM
    with no response under way is idle), checked before decoding, as it was live."""
    if core.ended:
        return
    if core.track.muted:
        core.counters[Count.LATE_TRACK_FRAMES_DROPPED] += 1
        return
    if core.responses.current is None and not any(pcm):
        core.counters[Count.IDLE_TRACK_FRAMES] += 1
        return
    try:
        frames = _track_to_caller(core.transcoder, pcm)
    except CodecError as exc:
        core.bad(Count.AI_BAD_AUDIO, f"track audio: {exc}")
        return
    core.play_track(frames, now)


def apply_v1(core: CallCore, inp: inputs.Input, now: float) -> None:
    """``inputs.apply``, and ``ai_audio_in`` lines by the rules above."""
    if isinstance(inp, inputs.AiAudioIn):
        receive_ai_audio(core, inp.pcm, now)
    else:
        inputs.apply(core, inp, now)


def _v1_transcoder(config: CallConfig) -> Transcoder | None:
    return TrackPcmTranscoder(config.opus_bitrate) if config.ai_format == "opus16k" else None


@dataclass(frozen=True, slots=True)
class Adapter:
    """How replay builds a capture's call core (its transcoder; None: the live one) and applies its inputs."""

    transcoder: Callable[[CallConfig], Transcoder | None]
    apply: Callable[[CallCore, inputs.Input, float], None]


CURRENT = Adapter(lambda config: None, inputs.apply)  # a plain Twilio log: no AI side at all
ADAPTERS: dict[int, Adapter] = {1: Adapter(_v1_transcoder, apply_v1), 2: CURRENT}


def adapter_for(version: object) -> Adapter:
    """The adapter for a capture header's ``capture`` version (None for a plain Twilio log)."""
    return ADAPTERS.get(version, CURRENT) if isinstance(version, int) else CURRENT
