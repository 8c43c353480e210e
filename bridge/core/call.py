"""The call core: one phone call between Twilio Media Streams and an OpenAI Realtime session.

Sans-I/O (like h11 or websockets' protocol layer): the driver feeds it messages with the
monotonic time they arrived, and drains messages to send and events to act on. It never
touches a socket, a clock or a random source, so a replayed capture yields the same report as
the live call did.

    receive_twilio(text, now)      one Media Streams message
    take_media(text, now)          the same, handing the common caller frame's append straight back
    receive_realtime(text, now)    one Realtime server event
    realtime_connected(now)        a (new) AI connection is up: configure the session
    realtime_closed(now, reason)   the AI connection is gone
    twilio_closed(now)             Twilio's socket closed (with or without ``stop``)
    record_sent(items, now)        the driver sent these items now (bridge latency)
    record_frame_sent(waited_s)    ... or the append take_media handed back, that long after it came
    record_rtt(peer, rtt_ms, now)  a WebSocket ping (or RTCP) round trip
    receive_ai_packet(seq, opus, now)  WebRTC leg: one RTP packet of AI audio (Opus payload)
    record_rtp(stats, now)         WebRTC leg: the RTP/RTCP figures of the AI leg, for the report
    record_loop_lag(counts, now)   the bridge's event-loop lag since the call began (bucket counts)
    end(now, reason)               the driver ends the call (shutdown, a broken Twilio socket)
    get_timer() / handle_timer(now)
    data_to_send() / next_event()

Drivers reach these through ``bridge/core/inputs.py`` (one dataclass per input, one ``apply``);
inputs only old captures hold are replay's (``bridge/replay/legacy.py``).
States: CONNECTED (socket open) -> STARTED (``start`` seen) -> ENDED; a socket that sends no
``start`` within ``start_timeout_s`` is ended by the timer. Anything after ENDED is ignored;
every bad input is counted (``bridge/core/counters.py``) and reported as a Problem, and the call goes
on; a bug met by an input is counted as ``internal_errors`` by the input's own guard; and the
call always ends with a report (a fallback one if the full report cannot be built).

This module holds the media bridging (caller frames metered, concealed and sent on, held while
the AI leg is down; AI audio decoded and sent to Twilio with marks), the per-interval figures
and the report. It delegates the rest: the AI leg's state and reconnect budget to
``ai_state.AiLeg``, responses, barge-in and turn timing to ``responses.Responses``, what the
caller has heard to ``playback.Playback``, and the WebRTC track gate to ``track.Track``.

The AI leg is the Realtime WebSocket for ``pcmu`` and ``pcm24k``, and WebRTC for ``opus16k``:
there caller audio leaves as Opus packets for the audio track (``Outgoing.audio``), AI audio comes
back as the RTP packets' Opus payloads, and the same GA events travel on the ``oai-events`` data
channel.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import traceback
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePath as Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from bridge.codecs import CodecError, Transcoder, make_transcoder
from bridge.codecs.g711 import FRAME_BYTES
from bridge.core.ai_state import AiLeg, AiState
from bridge.core.config import CallConfig
from bridge.core.counters import Count
from bridge.core.events import (
    CallEnded,
    CallStarted,
    Direction,
    Event,
    Outgoing,
    Peer,
    Problem,
    ReconnectRealtime,
)
from bridge.core.playback import MarkFate, Playback
from bridge.core.report import Measurements, build_report, fallback_report
from bridge.core.responses import Responses
from bridge.core.tags import CallTags, call_tags
from bridge.core.track import Track, TrackFate
from bridge.protocols import realtime as rt
from bridge.protocols import twilio as tw
from quality.lag import LAG_BOUNDS_S, LagFigures, lag_figures
from quality.latency import LatencyHistogram
from quality.meter import DirectionMeter
from quality.playout import FixedPlayout, Playout, QuantilePlayout
from quality.sequence import Arrival, SequenceTracker

_INTERVAL_FIELDS = ("start", "end", "expected", "lost", "late", "underrun", "frames_out", "ai_expected", "ai_lost",
                    "jitter_ms")
MAX_CONTEXT_ITEMS = 50  # transcripts kept to restore a conversation after a reconnect
_AI_FORMATS: dict[str, rt.AudioFormat] = {"pcmu": "audio/pcmu", "pcm24k": "audio/pcm"}
MAX_FILLED_AI_PACKETS = 3  # a longer hole in the WebRTC leg's audio is not filled in (60 ms)
DEADLINE_S = 0.020  # a frame forwarded later than one frame time after it arrived is a deadline miss
FRAME_S = 0.020
# Driver-side reasons to end a call (``end(now, "kind: detail")``) that are faults worth counting.
DRIVER_FAULTS = frozenset({Count.TWILIO_ERROR, Count.TWILIO_UNRESPONSIVE})


P = ParamSpec("P")
A = TypeVar("A")
B = TypeVar("B")


def guarded(method: Callable[Concatenate[CallCore, P], None]) -> Callable[Concatenate[CallCore, P], None]:
    """A core input that meets a bug counts it (``internal_errors``) and reports it as a Problem
    instead of raising: the call goes on, and since the guard is the core's own, a capture of
    that call replays to the same report."""
    @functools.wraps(method)
    def guarded(self: CallCore, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            self._internal_error(method.__name__, exc)
    return guarded


def guarded_frame(method: Callable[[CallCore, A, B], None]) -> Callable[[CallCore, A, B], None]:
    """``guarded`` for the inputs every frame passes (two positional arguments): the same guard
    without an ``*args`` tuple and ``**kwargs`` dict per call (0.3 µs each, two a caller frame)."""
    @functools.wraps(method)
    def guarded(self: CallCore, a: A, b: B, /) -> None:
        try:
            method(self, a, b)
        except Exception as exc:
            self._internal_error(method.__name__, exc)
    return guarded


class State(enum.Enum):
    CONNECTED = "connected"
    STARTED = "started"
    ENDED = "ended"


class CallCore:
    def __init__(self, config: CallConfig, now: float, transcoder: Transcoder | None = None,
                 timed: bool = True) -> None:
        """``timed=False``: arrival times are unknown (a plain Twilio log), so jitter and the
        playout model are not measured; loss and gaps still are."""
        self.config = config
        self.timed = timed
        self.state = State.CONNECTED
        self.created_at = now
        self.started_at: float | None = None
        self.counters: Counter[str] = Counter()
        self.call_sid = ""
        self.stream_sid = ""
        self.tags = CallTags(tenant=None)
        self.transcoder = transcoder if transcoder is not None else make_transcoder(
            config.ai_format, config.opus_bitrate)
        self._passthrough = self.transcoder.fmt == "pcmu"
        self._lane = self._passthrough and timed  # take_media's common case can happen at all
        self.inbound = DirectionMeter(self._playout())
        self.playback = Playback()
        self.latency = {Direction.INBOUND: LatencyHistogram(), Direction.OUTBOUND: LatencyHistogram()}
        self._latency_in = self.latency[Direction.INBOUND]
        self.deadline_misses = {Direction.INBOUND: 0, Direction.OUTBOUND: 0}
        self.rtt = {Peer.TWILIO: LatencyHistogram(), Peer.REALTIME: LatencyHistogram()}
        self.responses = Responses(self.playback, self.counters, config.ai_stall_s)
        self.ai = AiLeg(config.max_ai_reconnects, config.ai_healthy_s, now)
        self._intervals = array("d")  # _INTERVAL_FIELDS per closed interval: 80 bytes, for hours-long calls
        self._interval_start = now
        self._interval_base = self._interval_snapshot()
        self._out: list[Outgoing] = []
        self._events: list[Event] = []
        self._transcript: deque[tuple[Literal["user", "assistant"], str]] = deque(maxlen=MAX_CONTEXT_ITEMS)
        self.webrtc = config.ai_format == "opus16k"
        self.track = Track()
        self._rtp: dict[str, float | int | None] = {}
        self._ai_seq = SequenceTracker(modulus=65536)
        self._loop_lag: LagFigures | None = None
        # caller audio held while the AI leg is down: (payload, base64 as received or None)
        self._held: deque[tuple[bytes, str | None]] = deque()
        self._held_max = round(config.hold_audio_s / FRAME_S)
        self._tokens = float(config.max_message_burst)  # the Twilio connection's rate budget
        self._tokens_at = now
        self._rate_warned = False

    # ------------------------------------------------------------------ driver API

    @property
    def ended(self) -> bool:
        return self.state is State.ENDED

    def data_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    @guarded_frame
    def record_sent(self, items: Iterable[Outgoing], now: float) -> None:
        for item in items:
            if item.direction is not None:
                waited = now - item.ingress
                self.latency[item.direction].record(waited, item.frames)  # per 20 ms frame of the message
                if waited > DEADLINE_S:
                    self.deadline_misses[item.direction] += item.frames

    def record_frame_sent(self, waited_s: float) -> None:
        """``record_sent`` of one caller frame from :meth:`take_media`, sent ``waited_s`` after it arrived."""
        self._latency_in.record(waited_s)
        if waited_s > DEADLINE_S:
            self.deadline_misses[Direction.INBOUND] += 1

    @guarded
    def record_rtt(self, peer: Peer, rtt_ms: float, now: float) -> None:
        self.rtt[peer].record(rtt_ms / 1000.0)

    @guarded
    def record_rtp(self, stats: dict[str, float | int | None], now: float) -> None:
        """The WebRTC leg's latest RTP figures (cumulative: packets, loss, jitter, RTCP RTT)."""
        self._rtp = dict(stats)

    @guarded
    def record_loop_lag(self, cumulative: Sequence[int], now: float) -> None:
        """How late the bridge's event loop ran while this call lived: cumulative tick counts per
        ``LAG_BOUNDS_S`` bucket since the call began. A lagging loop leaves frames unread, which
        the call's own stamps then see as network jitter; the report says so."""
        self._loop_lag = lag_figures(LAG_BOUNDS_S, cumulative)

    def get_timer(self) -> float | None:
        if self.state is State.ENDED:
            return None
        deadline = self._interval_start + self.config.interval_s
        if self.state is State.CONNECTED:
            deadline = min(deadline, self.created_at + self.config.start_timeout_s)
        stall = self.responses.stall_deadline()
        return deadline if stall is None else min(deadline, stall)

    @guarded
    def handle_timer(self, now: float) -> None:
        if self.state is State.ENDED:
            return
        if self.state is State.CONNECTED and now >= self.created_at + self.config.start_timeout_s:
            self.counters[Count.NO_START] += 1
            self._problem("no_start", f"no start message within {self.config.start_timeout_s:g} s: closing")
            self._end(now, "no_start")
            return
        while now >= self._interval_start + self.config.interval_s:
            self._close_interval(self._interval_start + self.config.interval_s)
        stall = self.responses.check_stall(now)
        if stall is not None:
            self._problem("ai_stall", f"response {stall.response_id} sent no audio for {stall.silent_s:.1f} s")

    @guarded
    def realtime_connected(self, now: float) -> None:
        """A Realtime connection is open: configure it, and on a reconnect restore the context."""
        if self.state is State.ENDED:
            return
        self.ai.connected(now)
        self._send_ai(self.session_update().serialize(), now)
        for role, text in self._transcript:
            self._send_ai(rt.ContextItemCreate(role=role, text=text).serialize(), now)
        held, self._held = self._held, deque()
        for payload, b64 in held:  # what the caller said while we connected, in order; stamped now:
            self._send_audio(payload, now, b64)  # the hold is the AI's connect time, not bridge latency

    def session_update(self) -> rt.SessionUpdate:
        """The session this call asks for: the WebSocket formats, or none on the WebRTC leg
        (its audio is the Opus track negotiated in SDP)."""
        fmt = None if self.webrtc else _AI_FORMATS[self.config.ai_format]
        return rt.SessionUpdate(input_format=fmt, output_format=fmt, instructions=self.config.instructions,
                                voice=self.config.voice, model=self.config.model)

    @guarded
    def realtime_closed(self, now: float, reason: str) -> None:
        """The AI connection closed or could not be opened."""
        if self.state is State.ENDED:
            return
        closed = self.ai.closed(now)
        self.counters[Count.AI_DISCONNECTS] += 1
        if reason.startswith("connect timed out"):
            self.counters[Count.AI_CONNECT_TIMEOUTS] += 1
        self.responses.connection_lost()
        if closed.reconnect:
            self.counters[Count.AI_RECONNECTS] += 1
            self._problem("ai_closed", f"Realtime connection closed ({reason}); reconnecting "
                          f"({closed.attempt}/{closed.budget})")
            self._events.append(ReconnectRealtime(reason))
        else:
            self._problem("ai_closed", f"Realtime connection closed ({reason}); giving up", "error")
            self._end(now, f"ai_failed: {reason}")

    @guarded
    def twilio_closed(self, now: float) -> None:
        if self.state is not State.ENDED:
            self._end(now, "twilio_closed")

    @guarded
    def end(self, now: float, reason: str) -> None:
        """End the call from the driver's side (SIGTERM drain timeout, a Twilio socket that broke
        or stopped answering pings). A reason ``"kind: detail"`` whose kind is a DRIVER_FAULTS
        entry is counted and reported as a problem."""
        if self.state is State.ENDED:
            return
        kind = reason.split(":", 1)[0]
        if kind in DRIVER_FAULTS:
            self.counters[Count(kind)] += 1
            self._problem(kind, reason, "error")
        self._end(now, reason)

    # ------------------------------------------------------------------ Twilio side

    def receive_twilio(self, text: str | bytes, now: float) -> None:
        append = self.take_media(text, now)
        if append is not None:
            self._out.append(Outgoing(Peer.REALTIME, append, now, Direction.INBOUND))

    def take_media(self, text: str | bytes, now: float) -> str | None:
        """``receive_twilio``, returning the ``input_audio_buffer.append`` for the AI instead of
        queueing it when the message is the common case: the next in-order caller frame of a
        started call whose AI leg is up, passed through (``pcmu``) and timed. Such a frame makes
        nothing else (no event, no other output, no change of timer), so the driver writes the
        append itself and records it with :meth:`record_frame_sent`. Otherwise None: the message
        took the general way, and what it made is in ``data_to_send`` and ``next_event``."""
        try:  # the guard every input has (``guarded``), without a call of its own: once a frame
            if self.state is State.ENDED:
                return None
            try:
                d = tw.load_twilio(text, self.config.max_message_bytes)
            except tw.MessageTooLarge as exc:
                self.bad(Count.OVERSIZE, str(exc))
                return None
            except tw.MalformedJson as exc:
                self.bad(Count.BAD_JSON, str(exc))
                return None
            except tw.TwilioProtocolError as exc:
                self.bad(Count.BAD_MESSAGE, str(exc))
                return None
            if self._lane and self.state is State.STARTED and self.ai.state is AiState.UP:
                frame = tw.inbound_frame(d)
                if frame is not None:
                    # What the general way does with it (_within_rate, then _on_media down to
                    # _send_audio) when every test on that way passes; with nothing changed
                    # when one would not, for the general way to take it (tests/bridge/core/test_lane.py).
                    chunk, timestamp, payload = frame
                    try:
                        audio = binascii.a2b_base64(payload, strict_mode=True)
                    except (binascii.Error, ValueError):
                        audio = b""
                    if len(audio) == FRAME_BYTES:
                        tokens = self._tokens_now(now)
                        if tokens >= 1.0 and self.inbound.in_order(chunk, timestamp / 1000.0, now):
                            self._tokens = tokens - 1.0
                            self._tokens_at = now
                            self.transcoder.to_ai(audio)
                            return rt.append_text(payload)
            self._receive_object(d, now)
        except Exception as exc:
            self._internal_error("receive_twilio", exc)
        return None

    def _receive_object(self, d: dict[str, Any], now: float) -> None:
        try:
            msg = tw.parse_object(d)
        except tw.TwilioProtocolError as exc:
            self.bad(Count.BAD_MESSAGE, str(exc))
            return
        if isinstance(msg, tw.MediaMessage):
            if self._within_rate(now):
                self._on_media(msg, now)
        elif isinstance(msg, tw.MarkMessage):
            self._on_mark(msg, now)
        elif isinstance(msg, tw.StartMessage):
            self._on_start(msg, now)
        elif isinstance(msg, tw.DtmfMessage):
            self._on_dtmf(msg, now)
        elif isinstance(msg, tw.StopMessage):
            self._end(now, "stop")
        elif isinstance(msg, tw.UnknownTwilioEvent):
            self.bad(Count.UNKNOWN_TWILIO_EVENT, f"unknown Twilio event {msg.event!r}")

    def _tokens_now(self, now: float) -> float:
        """The token bucket's level at ``now``, refilled since it was last taken from."""
        cfg = self.config
        return min(float(cfg.max_message_burst), self._tokens + (now - self._tokens_at) * cfg.max_messages_per_s)

    def _within_rate(self, now: float) -> bool:
        """Token bucket over the Twilio connection's media messages: a burst of
        ``max_message_burst`` (a stalled network's backlog), refilled at ``max_messages_per_s``
        (twice Twilio's 50 a second). Media beyond it is dropped and counted, so a flood cannot
        take the event loop from every other call on the pod; ``stop``, marks and the rest always
        pass."""
        cfg = self.config
        self._tokens = self._tokens_now(now)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.counters[Count.RATE_LIMITED] += 1
        if not self._rate_warned:
            self._rate_warned = True
            self._problem("rate_limited", f"Twilio messages beyond {cfg.max_messages_per_s:g}/s (burst "
                          f"{cfg.max_message_burst}): the excess is dropped and counted")
        return False

    def _on_start(self, msg: tw.StartMessage, now: float) -> None:
        if self.state is State.STARTED:
            self.bad(Count.DUPLICATE_START, "a second start message on one stream")
            return
        fmt = msg.media_format
        if (fmt.encoding, fmt.sample_rate, fmt.channels) != ("audio/x-mulaw", 8000, 1):
            self.counters[Count.MEDIA_FORMAT] += 1
            self._problem("media_format", f"Twilio media format {fmt.encoding}/{fmt.sample_rate}/"
                          f"{fmt.channels}; the bridge expects audio/x-mulaw/8000/1", "error")
        self.state = State.STARTED
        self.started_at = now
        self.call_sid = msg.call_sid
        self.stream_sid = msg.stream_sid
        self.tags = call_tags(msg.custom_parameters, self.config.pseudonym_key, self.config.phi_keys)
        self._events.append(CallStarted(self.call_sid, self.stream_sid, self.tags.tenant, dict(self.tags.tags)))

    def _on_media(self, msg: tw.MediaMessage, now: float) -> None:
        if self.state is not State.STARTED:
            self.bad(Count.MEDIA_BEFORE_START, "media before the start message: dropped")
            return
        if msg.track != "inbound":
            self.bad(Count.WRONG_TRACK, f"media on track {msg.track!r}: only inbound is bridged")
            return
        try:
            audio = msg.audio()
        except tw.BadBase64 as exc:
            self.bad(Count.BAD_BASE64, f"chunk {msg.chunk}: {exc}")
            return
        arrival = self.inbound.update(msg.chunk, msg.timestamp / 1000.0, now if self.timed else None)
        if self.inbound.last_clock is not None:
            self.bad(Count(self.inbound.last_clock), f"chunk {msg.chunk}: media timestamp {msg.timestamp} ms "
                      + ("jumps ahead by more than the longest gap counted as loss: clock re-anchored"
                         if self.inbound.last_clock == "timestamp_jump" else "goes backwards: not metered"))
        if arrival is Arrival.DUPLICATE or arrival is Arrival.TOO_LATE:
            self.counters[Count(f"{arrival.value}_frames")] += 1
            return
        if arrival is Arrival.LATE:
            # Its slot was already concealed and sent on: the AI's buffer is a stream.
            self.counters[Count.REORDERED_FRAMES] += 1
            return
        try:
            if arrival is Arrival.GAP:
                self._conceal_gap(now)
            payloads = self.transcoder.to_ai(audio)
        except CodecError as exc:
            self.bad(Count.BAD_FRAME, f"chunk {msg.chunk}: {exc}")
            return
        if self._passthrough and payloads == [audio]:
            self._send_audio(audio, now, msg.payload)  # the base64 as received: no re-encoding
            return
        for payload in payloads:
            self._send_audio(payload, now)

    def _conceal_gap(self, now: float) -> None:
        missing = self.inbound.last_missing
        fill = min(missing, self.config.max_conceal_frames)
        self.counters[Count.CONCEALED_FRAMES] += fill
        for _ in range(fill):
            for payload in self.transcoder.conceal_to_ai():
                self._send_audio(payload, now)

    def _on_mark(self, msg: tw.MarkMessage, now: float) -> None:
        fate, response_id = self.playback.mark_echoed(msg.name, now)
        self.counters[Count(f"marks_{fate.value}")] += 1
        if fate is MarkFate.PLAYED and response_id is not None:
            self.responses.played(response_id, now)

    def _on_dtmf(self, msg: tw.DtmfMessage, now: float) -> None:
        self.counters[Count.DTMF_DIGITS] += 1
        self._send_ai(rt.DtmfItemCreate(digit=msg.digit).serialize(), now)

    # ------------------------------------------------------------------ Realtime side

    @guarded_frame
    def receive_realtime(self, text: str | bytes, now: float) -> None:
        if self.state is State.ENDED:
            return
        try:
            ev = rt.parse_realtime(text)
        except rt.RealtimeProtocolError as exc:
            self.bad(Count.AI_BAD_EVENT, str(exc))
            return
        if isinstance(ev, rt.OutputAudioDelta):
            self._on_delta(ev, now)
        elif isinstance(ev, rt.SpeechStarted):
            self._on_speech_started(now)
        elif isinstance(ev, rt.SpeechStopped):
            self.responses.speech_stopped(now)
        elif isinstance(ev, rt.ResponseLifecycle):
            self._on_response(ev, now)
        elif isinstance(ev, rt.OutputAudioDone):
            if not self.responses.is_cancelled(ev.response_id):
                self._flush_outbound(ev.item_id, ev.response_id, now)
        elif isinstance(ev, rt.SessionCreated):
            if ev.type == "session.updated":
                self._check_session(ev.audio)
        elif isinstance(ev, rt.ErrorEvent):
            self.counters[Count.AI_ERRORS] += 1
            self._problem("ai_error", f"{ev.error_type}/{ev.code}: {ev.message}",
                          "error" if ev.code == "session_expired" else "warning")
        elif isinstance(ev, rt.OutputItemAdded):
            if self.webrtc:
                self.track.item_added(ev.item_id)
        elif isinstance(ev, rt.OutputAudioBuffer):
            if self.webrtc:
                self._on_audio_buffer(ev, now)
        elif isinstance(ev, rt.Transcript) and ev.text is not None:
            self._transcript.append((ev.role, ev.text))

    def _check_session(self, audio: rt.SessionAudioFormats | None) -> None:
        if self.webrtc:
            return  # the track's codec was negotiated in SDP; the session's format fields do not apply
        want = _AI_FORMATS[self.config.ai_format]
        got = [] if audio is None else [audio.input, audio.output]
        if got != [want, want]:
            self.counters[Count.AI_FORMAT_MISMATCH] += 1
            self._problem("ai_format_mismatch", f"session.updated echoes audio formats {got}, asked for "
                          f"{[want, want]}: server VAD and playback will be wrong", "error")

    def _on_audio_buffer(self, ev: rt.OutputAudioBuffer, now: float) -> None:
        """WebRTC leg: the server's track plays an answer from ``started`` to ``stopped`` (flush
        what the decoder holds) or ``cleared``."""
        self.track.buffer(ev.state)
        if ev.state == "stopped":
            self._flush_outbound(self.track.item, ev.response_id or "", now)

    def _on_response(self, ev: rt.ResponseLifecycle, now: float) -> None:
        if ev.type == "response.created":
            self.responses.created(ev.response_id, now)
            self.track.response_started()
        else:
            self.responses.done(ev.response_id, ev.status)

    def _on_delta(self, ev: rt.OutputAudioDelta, now: float) -> None:
        if not self.responses.delta(ev.response_id, now):
            return
        try:
            payload = binascii.a2b_base64(ev.delta, strict_mode=True)  # validated in C, no regex
        except (binascii.Error, ValueError):
            self.bad(Count.AI_BAD_BASE64, f"response {ev.response_id}: audio delta is not base64")
            return
        try:
            frames = self.transcoder.to_caller(payload)
        except CodecError as exc:
            self.bad(Count.AI_BAD_AUDIO, f"response {ev.response_id}: {exc}")
            return
        # with chunked messages a delta's last partial frame goes now, not with the next delta
        tail = self.transcoder.take_to_caller() if self.config.outbound_chunk_ms else b""
        self._play(frames, ev.item_id, ev.response_id, now, tail)

    @guarded
    def receive_ai_packet(self, seq: int, opus: bytes, now: float) -> None:
        """WebRTC leg: one RTP packet of the AI's audio (its sequence number and Opus payload,
        RFC 7587) as it arrived. It is decoded and forwarded at once: no receive buffer.

        A short hole in the sequence is filled (libopus PLC, and in-band FEC from this packet
        for the last lost one, RFC 6716 §2.1.7); a longer one is not, because Twilio already
        played it as silence and filling it would only delay the rest of the answer. A packet
        older than one already decoded is dropped: its slot is gone. A jump of the sequence
        number by thousands is the sender starting over (RFC 3550 A.1), not loss."""
        if self.state is State.ENDED:
            return
        if self._ai_seq.is_restart(seq):
            self.counters[Count.AI_SEQ_RESTARTS] += 1
            self._ai_seq = SequenceTracker(modulus=65536)
        arrival, missing = self._ai_seq.update(seq)
        if arrival is not Arrival.IN_ORDER and arrival is not Arrival.GAP:
            self.counters[Count(f"ai_packets_{arrival.value}")] += 1
            return
        frames: list[bytes] = []
        try:
            if missing:
                self.counters[Count.AI_PACKETS_MISSING] += missing
                fill = min(missing, MAX_FILLED_AI_PACKETS)
                self.counters[Count.AI_PACKETS_FILLED] += fill
                for k in range(fill):
                    frames += self.transcoder.lost_from_ai(opus if k == fill - 1 else None)
            frames += self.transcoder.to_caller(opus)
        except CodecError as exc:
            self.bad(Count.AI_BAD_AUDIO, f"RTP packet {seq}: {exc}")
            return
        self.counters[Count.AI_PACKETS] += 1
        self._track_frames(frames, now)

    def _track_frames(self, frames: list[bytes], now: float) -> None:
        fate = self.track.gate(frames, responding=self.responses.current is not None)
        if fate is TrackFate.MUTED:
            self.counters[Count.LATE_TRACK_FRAMES_DROPPED] += 1
        elif fate is TrackFate.IDLE:
            self.counters[Count.IDLE_TRACK_FRAMES] += 1
        else:
            self.play_track(frames, now)

    def play_track(self, frames: list[bytes], now: float) -> None:
        """Decoded track audio the gate let through: played as the response under way's."""
        self.responses.audio_arrived(now)
        self._play(frames, self.track.item, self.responses.current or "", now)

    def _flush_outbound(self, item_id: str, response_id: str, now: float) -> None:
        try:
            frames = self.transcoder.flush_to_caller()
        except CodecError as exc:
            self.bad(Count.AI_BAD_AUDIO, f"response {response_id}: {exc}")
            frames = self.transcoder.flush_to_caller()
        self._play(frames, item_id, response_id, now)

    def _play(self, frames: list[bytes], item_id: str, response_id: str, now: float, tail: bytes = b"") -> None:
        """Queue the AI's audio for Twilio: media messages of up to ``outbound_chunk_ms`` each (the
        last one may end with ``tail``, less than a frame), each followed by a mark naming how much
        of the item had been sent."""
        if not (frames or tail) or self.state is not State.STARTED:
            return
        per = self.config.outbound_chunk_ms // 20
        if not per:
            for frame in frames:
                self._out.append(Outgoing(Peer.TWILIO, tw.media_text(self.stream_sid, frame), now, Direction.OUTBOUND))
            self._mark(item_id, response_id, len(frames) * FRAME_BYTES, now)
        else:
            chunks = [b"".join(frames[i:i + per]) for i in range(0, len(frames), per)] or [b""]
            chunks[-1] += tail
            for audio in chunks:
                self._out.append(Outgoing(Peer.TWILIO, tw.media_text(self.stream_sid, audio), now, Direction.OUTBOUND,
                                          frames=-(-len(audio) // FRAME_BYTES)))
                self._mark(item_id, response_id, len(audio), now)
        self.responses.audio_sent(response_id, now)

    def _mark(self, item_id: str, response_id: str, nbytes: int, now: float) -> None:
        self.playback.audio_sent(item_id, nbytes, now)
        name = self.playback.new_mark(item_id, response_id, now)
        self._out.append(Outgoing(Peer.TWILIO, tw.mark_text(self.stream_sid, name), now))
        self.counters[Count.MARKS_SENT] += 1

    def _on_speech_started(self, now: float) -> None:
        """Barge-in: stop what the caller hears and cut the AI's item at what was played."""
        barge_in = self.responses.speech_started()
        if barge_in is None:
            return
        self._out.append(Outgoing(Peer.TWILIO, tw.ClearMessage(self.stream_sid).serialize(), now))
        if barge_in.truncate is not None:
            self._send_ai(barge_in.truncate.serialize(), now)
        if self.webrtc:
            self.track.barged_in()
            self._send_ai(rt.OutputAudioBufferClear().serialize(), now)
        self._drop_outbound_remainder()

    def _drop_outbound_remainder(self) -> None:
        try:
            self.transcoder.flush_to_caller()
        except CodecError:
            self.transcoder.flush_to_caller()

    # ------------------------------------------------------------------ helpers

    def _playout(self) -> Playout:
        if self.config.jitter_buffer == "fixed":
            return FixedPlayout(self.config.fixed_buffer_ms / 1000.0)
        return QuantilePlayout()

    def _send_ai(self, text: str, now: float) -> None:
        self._out.append(Outgoing(Peer.REALTIME, text, now))

    def _send_audio(self, payload: bytes, now: float, b64: str | None = None) -> None:
        """Caller audio to the AI; while the AI leg is down it is held (``frames_held_for_ai``) up
        to ``hold_audio_s`` and sent once the session is up; beyond that bound it is dropped
        (``frames_while_ai_down``)."""
        if not self.ai.up:
            if len(self._held) < self._held_max:
                self._held.append((payload, b64))
                self.counters[Count.FRAMES_HELD_FOR_AI] += 1
            else:
                self.counters[Count.FRAMES_WHILE_AI_DOWN] += 1
            return
        if self.webrtc:
            self._out.append(Outgoing(Peer.REALTIME, "", now, Direction.INBOUND, payload))
            return
        self._out.append(Outgoing(Peer.REALTIME, rt.append_text(b64 or base64.b64encode(payload).decode("ascii")), now,
                                  Direction.INBOUND))

    def bad(self, counter: Count, detail: str) -> None:
        """Bad input: counted and reported as a Problem; the call goes on."""
        self.counters[counter] += 1
        self._problem(counter, detail)

    def _internal_error(self, name: str, exc: Exception) -> None:
        """What an input's guard does with the bug it met: counted, and a Problem naming where."""
        self.counters[Count.INTERNAL_ERRORS] += 1
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self._problem("internal_error", f"{name}: {type(exc).__name__}: {exc} "
                      f"(at {Path(where.filename).name}:{where.lineno}); the call goes on", "error")

    def _problem(self, kind: str, detail: str, level: str = "warning") -> None:
        sid = f"{self.call_sid}: " if self.call_sid else ""
        self._events.append(Problem(kind, sid + detail, level))

    @property
    def intervals(self) -> list[tuple[float, float, dict[str, float]]]:
        """Closed intervals as (start, end, counts in the interval)."""
        n = len(_INTERVAL_FIELDS)
        rows = [self._intervals[i:i + n] for i in range(0, len(self._intervals), n)]
        return [(r[0], r[1], dict(zip(_INTERVAL_FIELDS[2:], r[2:], strict=True))) for r in rows]

    def _interval_snapshot(self) -> dict[str, float]:
        f = self.inbound.figures()
        missing = self.counters[Count.AI_PACKETS_MISSING]
        j = self.inbound.jitter
        return {"expected": f.expected, "lost": f.lost, "late": float(f.late_discards or 0),
                "underrun": float(self.playback.underrun_frames), "frames_out": float(self.playback.frames),
                "ai_expected": float(self.counters[Count.AI_PACKETS] + missing), "ai_lost": float(missing),
                "jitter_sum": j.sum_ms, "jitter_n": float(j.samples)}

    def _close_interval(self, end: float) -> None:
        """Close the interval at ``end``: its counts, and the mean of J over its frames."""
        snap = self._interval_snapshot()
        base = self._interval_base
        n = snap["jitter_n"] - base["jitter_n"]
        jitter = (snap["jitter_sum"] - base["jitter_sum"]) / n if n else 0.0
        counts = (snap[k] - base[k] for k in _INTERVAL_FIELDS[2:-1])
        self._intervals.extend([self._interval_start, end, *counts, jitter])
        self._interval_start = end
        self._interval_base = snap

    def measurements(self) -> Measurements:
        return Measurements(
            inbound=self.inbound.figures(),
            playback=self.playback,
            latency=self.latency,
            deadline_misses=self.deadline_misses,
            rtt=self.rtt,
            turn_to_sent=self.responses.turn_to_sent,
            turn_to_played=self.responses.turn_to_played,
        )

    def _end(self, now: float, reason: str) -> None:
        """End the call and emit its report. Nothing in here may cost the report: if the full
        one cannot be built, a fallback report with the error counted takes its place."""
        self.state = State.ENDED
        duration = now - (self.started_at if self.started_at is not None else self.created_at)
        try:
            if now > self._interval_start:
                self._close_interval(now)
            report = build_report(
                call_sid=self.call_sid or "unknown",
                stream_sid=self.stream_sid,
                tags=self.tags,
                config=self.config,
                transcoder=self.transcoder,
                m=self.measurements(),
                intervals=self.intervals,
                duration_s=duration,
                end_reason=reason,
                counters=dict(self.counters),
                rtp=self._rtp if self.webrtc else None,
                loop_lag=self._loop_lag,
            )
        except Exception as exc:  # a bug: the call still gets a report, and the bug is counted and logged
            self.counters[Count.REPORT_ERRORS] += 1
            error = f"report could not be built: {type(exc).__name__}: {exc}"
            self._problem("report_error", error, "error")
            report = fallback_report(call_sid=self.call_sid or "unknown", stream_sid=self.stream_sid,
                                     tags=self.tags, config=self.config,
                                     duration_s=duration, end_reason=reason, counters=dict(self.counters),
                                     error=error)
        self._events.append(CallEnded(reason, report))
