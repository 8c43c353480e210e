"""OpenAI Realtime (GA interface) events the bridge sends and reads, sans-I/O.

Sources: https://developers.openai.com/api/reference/resources/realtime/client-events and
https://developers.openai.com/api/reference/resources/realtime/server-events (GA shapes:
``session.type: "realtime"``, ``audio.input.format`` / ``audio.output.format``,
``response.output_audio.delta``). Tests validate what ``serialize()`` writes against the
``openai.types.realtime`` pydantic models.

Sent by the bridge: ``session.update``, ``input_audio_buffer.append``,
``conversation.item.truncate``, ``conversation.item.create`` (a DTMF digit as a user text item,
or a transcript restoring the conversation after a reconnect), ``output_audio_buffer.clear``
(WebRTC leg). ``response.cancel`` is modelled for the stand-ins and tests; the bridge does not
send it (server VAD cancels on barge-in).
Read (``parse_realtime``): ``session.created``/``session.updated`` (session kept as a dict, its
audio formats read into ``SessionAudioFormats``),
``input_audio_buffer.speech_started``/``speech_stopped``, ``response.created``,
``response.output_audio.delta``/``done``, ``response.done`` (with its id and status), ``error``,
``response.output_item.added``, ``output_audio_buffer.started``/``stopped``/``cleared``, and the
two finished transcripts; anything else comes back as ``Unknown(raw)``. Malformed input raises a
``RealtimeProtocolError`` subclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

import orjson

from bridge.protocols import compact_json

AudioFormat: TypeAlias = Literal["audio/pcmu", "audio/pcm"]
PCM_RATE: Final = 24000



class RealtimeProtocolError(ValueError):
    """Base of every error raised on a Realtime server event that breaks the documented shape."""


class RealtimeMalformedJson(RealtimeProtocolError):
    """The frame is not a JSON object."""


class RealtimeMissingField(RealtimeProtocolError):
    def __init__(self, path: str, event: str) -> None:
        super().__init__(f"missing field {path!r} in {event!r} event")
        self.path = path


class RealtimeWrongFieldType(RealtimeProtocolError):
    def __init__(self, path: str, expected: str, value: object, event: str) -> None:
        super().__init__(f"field {path!r} in {event!r} event must be {expected}, got {value!r:.40}")
        self.path = path


def _get(d: Mapping[str, Any], key: str, kind: type, name: str, event: str) -> Any:
    try:
        value = d[key]
    except KeyError:
        raise RealtimeMissingField(key, event) from None
    if type(value) is not kind:
        raise RealtimeWrongFieldType(key, name, value, event)
    return value


def _s(d: Mapping[str, Any], key: str, event: str) -> str:
    value: str = _get(d, key, str, "a string", event)
    return value


def _i(d: Mapping[str, Any], key: str, event: str) -> int:
    value: int = _get(d, key, int, "an integer", event)
    return value


def _o(d: Mapping[str, Any], key: str, event: str) -> dict[str, Any]:
    value: dict[str, Any] = _get(d, key, dict, "an object", event)
    return value


def _opt_s(d: Mapping[str, Any], key: str, event: str) -> str | None:
    value = d.get(key)
    if value is not None and type(value) is not str:
        raise RealtimeWrongFieldType(key, "a string or null", value, event)
    return value


def _lenient_s(d: Mapping[str, Any], key: str) -> str | None:
    value = d.get(key)
    return value if type(value) is str else None


def _with_id(body: dict[str, Any], event_id: str | None) -> str:
    if event_id is not None:
        body["event_id"] = event_id
    return compact_json.dumps(body)


def _format(fmt: AudioFormat) -> dict[str, Any]:
    return {"type": "audio/pcm", "rate": PCM_RATE} if fmt == "audio/pcm" else {"type": fmt}


# --------------------------------------------------------------------------- sent


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """Configure a realtime session: one audio format each way and server VAD."""

    input_format: AudioFormat | None = "audio/pcmu"  # None: the WebRTC leg, whose audio is the Opus track
    output_format: AudioFormat | None = "audio/pcmu"
    instructions: str | None = None
    voice: str | None = None
    model: str | None = None
    event_id: str | None = None

    def session(self) -> dict[str, Any]:
        """The ``session`` object (also what the WebRTC leg POSTs with its SDP offer)."""
        output: dict[str, Any] = {} if self.output_format is None else {"format": _format(self.output_format)}
        if self.voice is not None:
            output["voice"] = self.voice
        audio_in: dict[str, Any] = {} if self.input_format is None else {"format": _format(self.input_format)}
        audio_in["turn_detection"] = {"type": "server_vad"}
        session: dict[str, Any] = {"type": "realtime"}
        if self.model is not None:
            session["model"] = self.model
        session["output_modalities"] = ["audio"]
        session["audio"] = {"input": audio_in, "output": output}
        if self.instructions is not None:
            session["instructions"] = self.instructions
        return session

    def serialize(self) -> str:
        return _with_id({"type": "session.update", "session": self.session()}, self.event_id)


@dataclass(frozen=True, slots=True)
class OutputAudioBufferClear:
    """WebRTC only: stop the audio the server is playing on the track (barge-in)."""

    event_id: str | None = None

    def serialize(self) -> str:
        return _with_id({"type": "output_audio_buffer.clear"}, self.event_id)


@dataclass(slots=True)  # not frozen: one per 20 ms per call, and frozen __init__ costs 5x
class InputAudioBufferAppend:
    audio: str  # base64 in the session's input format
    event_id: str | None = None

    def serialize(self) -> str:
        if self.event_id is None:
            return append_text(self.audio)
        return _with_id({"type": "input_audio_buffer.append", "audio": self.audio}, self.event_id)


def append_text(audio: str) -> str:
    """``input_audio_buffer.append`` of ``audio`` (base64) with no event id, as text: every 20 ms of caller
    audio, so built without a dataclass; base64 needs no escaping."""
    return '{"type":"input_audio_buffer.append","audio":"' + audio + '"}'


@dataclass(frozen=True, slots=True)
class ConversationItemTruncate:
    """Cut the assistant item's audio at what the caller actually heard (barge-in)."""

    item_id: str
    content_index: int
    audio_end_ms: int
    event_id: str | None = None

    def serialize(self) -> str:
        body = {
            "type": "conversation.item.truncate",
            "item_id": self.item_id,
            "content_index": self.content_index,
            "audio_end_ms": self.audio_end_ms,
        }
        return _with_id(body, self.event_id)


@dataclass(frozen=True, slots=True)
class DtmfItemCreate:
    """A caller keypress as a user text message (``conversation.item.create``)."""

    digit: str
    template: str = "The caller pressed the key {digit} on the keypad."
    event_id: str | None = None

    def serialize(self) -> str:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": self.template.format(digit=self.digit)}],
        }
        return _with_id({"type": "conversation.item.create", "item": item}, self.event_id)


@dataclass(frozen=True, slots=True)
class ContextItemCreate:
    """A text item restoring conversation context on a new session after a reconnect."""

    role: Literal["user", "assistant"]
    text: str
    event_id: str | None = None

    def serialize(self) -> str:
        kind = "input_text" if self.role == "user" else "output_text"
        item = {"type": "message", "role": self.role, "content": [{"type": kind, "text": self.text}]}
        return _with_id({"type": "conversation.item.create", "item": item}, self.event_id)


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    response_id: str | None = None
    event_id: str | None = None

    def serialize(self) -> str:
        body: dict[str, Any] = {"type": "response.cancel"}
        if self.response_id is not None:
            body["response_id"] = self.response_id
        return _with_id(body, self.event_id)


RealtimeClientEvent: TypeAlias = (
    SessionUpdate
    | InputAudioBufferAppend
    | ConversationItemTruncate
    | DtmfItemCreate
    | ContextItemCreate
    | ResponseCancel
)


# --------------------------------------------------------------------------- read


@dataclass(frozen=True, slots=True)
class SessionAudioFormats:
    """The audio format types a session echoes (GA ``audio.input.format.type`` and
    ``audio.output.format.type``), read leniently: a side without a string type is None."""

    input: str | None
    output: str | None

    @classmethod
    def parse(cls, session: Mapping[str, Any]) -> SessionAudioFormats | None:
        """None when the session carries no ``audio`` object at all."""
        audio = session.get("audio")
        if type(audio) is not dict:
            return None
        sides: list[str | None] = []
        for side in ("input", "output"):
            part = audio.get(side)
            fmt = part.get("format") if type(part) is dict else None
            sides.append(_lenient_s(fmt, "type") if type(fmt) is dict else None)
        return cls(*sides)


@dataclass(frozen=True)
class SessionCreated:
    """``session.created`` / ``session.updated``: the session is kept whole (serialize gives it
    back) and its audio formats are read from it, for the bridge to check what it asked for."""

    event_id: str
    session: dict[str, Any]
    type: Literal["session.created", "session.updated"] = "session.created"
    audio: SessionAudioFormats | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "audio", SessionAudioFormats.parse(self.session))

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> SessionCreated:
        return cls(_s(d, "event_id", d["type"]), _o(d, "session", d["type"]), d["type"])

    def serialize(self) -> str:
        return compact_json.dumps({"type": self.type, "event_id": self.event_id, "session": self.session})


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    event_id: str
    audio_start_ms: int
    item_id: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> SpeechStarted:
        e = "input_audio_buffer.speech_started"
        return cls(_s(d, "event_id", e), _i(d, "audio_start_ms", e), _s(d, "item_id", e))

    def serialize(self) -> str:
        return compact_json.dumps(
            {
                "type": "input_audio_buffer.speech_started",
                "event_id": self.event_id,
                "audio_start_ms": self.audio_start_ms,
                "item_id": self.item_id,
            }
        )


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    event_id: str
    audio_end_ms: int
    item_id: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> SpeechStopped:
        e = "input_audio_buffer.speech_stopped"
        return cls(_s(d, "event_id", e), _i(d, "audio_end_ms", e), _s(d, "item_id", e))

    def serialize(self) -> str:
        return compact_json.dumps(
            {
                "type": "input_audio_buffer.speech_stopped",
                "event_id": self.event_id,
                "audio_end_ms": self.audio_end_ms,
                "item_id": self.item_id,
            }
        )


@dataclass(frozen=True)
class ResponseLifecycle:
    """``response.created`` or ``response.done``; the response object is kept whole, and its
    ``id`` and ``status`` (``completed``, ``cancelled``, ...) are read from it leniently."""

    type: Literal["response.created", "response.done"]
    event_id: str
    response: dict[str, Any]
    response_id: str | None = field(init=False, compare=False)
    status: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "response_id", _lenient_s(self.response, "id"))
        object.__setattr__(self, "status", _lenient_s(self.response, "status"))

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> ResponseLifecycle:
        return cls(d["type"], _s(d, "event_id", d["type"]), _o(d, "response", d["type"]))

    def serialize(self) -> str:
        return compact_json.dumps({"type": self.type, "event_id": self.event_id, "response": self.response})


@dataclass(frozen=True, slots=True)
class OutputAudioDelta:
    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int
    delta: str  # base64 in the session's output format

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutputAudioDelta:
        e = "response.output_audio.delta"
        return cls(
            _s(d, "event_id", e),
            _s(d, "response_id", e),
            _s(d, "item_id", e),
            _i(d, "output_index", e),
            _i(d, "content_index", e),
            _s(d, "delta", e),
        )

    def serialize(self) -> str:
        return compact_json.dumps(
            {
                "type": "response.output_audio.delta",
                "event_id": self.event_id,
                "response_id": self.response_id,
                "item_id": self.item_id,
                "output_index": self.output_index,
                "content_index": self.content_index,
                "delta": self.delta,
            }
        )


@dataclass(frozen=True, slots=True)
class OutputAudioDone:
    event_id: str
    response_id: str
    item_id: str
    output_index: int
    content_index: int

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutputAudioDone:
        e = "response.output_audio.done"
        return cls(
            _s(d, "event_id", e),
            _s(d, "response_id", e),
            _s(d, "item_id", e),
            _i(d, "output_index", e),
            _i(d, "content_index", e),
        )

    def serialize(self) -> str:
        return compact_json.dumps(
            {
                "type": "response.output_audio.done",
                "event_id": self.event_id,
                "response_id": self.response_id,
                "item_id": self.item_id,
                "output_index": self.output_index,
                "content_index": self.content_index,
            }
        )


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    event_id: str
    error_type: str
    message: str
    code: str | None
    param: str | None
    client_event_id: str | None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> ErrorEvent:
        e = "error"
        err = _o(d, "error", e)
        return cls(
            _s(d, "event_id", e),
            _s(err, "type", e),
            _s(err, "message", e),
            _opt_s(err, "code", e),
            _opt_s(err, "param", e),
            _opt_s(err, "event_id", e),
        )

    def serialize(self) -> str:
        err = {
            "type": self.error_type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "event_id": self.client_event_id,
        }
        return compact_json.dumps({"type": "error", "event_id": self.event_id, "error": err})


@dataclass(frozen=True, slots=True)
class OutputItemAdded:
    """``response.output_item.added``: the item the response's audio belongs to (on the WebRTC
    leg, track audio carries no item id, so this names it). Fields the bridge does not need
    are read leniently: a missing one is None, not an error."""

    response_id: str | None
    item_id: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)  # kept whole: serialize gives it back

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutputItemAdded:
        item = d.get("item")
        return cls(_lenient_s(d, "response_id"), _lenient_s(item, "id") if type(item) is dict else None, d)

    def serialize(self) -> str:
        return compact_json.dumps(self.raw)


@dataclass(frozen=True, slots=True)
class OutputAudioBuffer:
    """``output_audio_buffer.started`` / ``.stopped`` / ``.cleared`` (WebRTC leg): the server's
    track begins playing an answer, has played all of it, or was cleared."""

    state: Literal["started", "stopped", "cleared"]
    response_id: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutputAudioBuffer:
        state = {"output_audio_buffer.started": "started", "output_audio_buffer.stopped": "stopped"}.get(
            d["type"], "cleared")
        return cls(state, _lenient_s(d, "response_id"), d)  # type: ignore[arg-type]

    def serialize(self) -> str:
        return compact_json.dumps(self.raw)


@dataclass(frozen=True, slots=True)
class Transcript:
    """A finished transcript: ``response.output_audio_transcript.done`` (the assistant's) or
    ``conversation.item.input_audio_transcription.completed`` (the caller's); kept to restore
    the conversation after a reconnect. ``text`` is None when the event carries none."""

    role: Literal["assistant", "user"]
    text: str | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Transcript:
        role: Literal["assistant", "user"] = "assistant" if d["type"].startswith("response.") else "user"
        return cls(role, _lenient_s(d, "transcript"), d)

    def serialize(self) -> str:
        return compact_json.dumps(self.raw)


@dataclass(frozen=True)
class Unknown:
    raw: dict[str, Any]

    def serialize(self) -> str:
        return compact_json.dumps(self.raw)


RealtimeServerEvent: TypeAlias = (
    SessionCreated
    | SpeechStarted
    | SpeechStopped
    | ResponseLifecycle
    | OutputAudioDelta
    | OutputAudioDone
    | ErrorEvent
    | OutputItemAdded
    | OutputAudioBuffer
    | Transcript
    | Unknown
)

_PARSERS: Final[dict[str, Any]] = {
    "response.output_audio.delta": OutputAudioDelta.parse,
    "response.output_audio.done": OutputAudioDone.parse,
    "input_audio_buffer.speech_started": SpeechStarted.parse,
    "input_audio_buffer.speech_stopped": SpeechStopped.parse,
    "response.created": ResponseLifecycle.parse,
    "response.done": ResponseLifecycle.parse,
    "session.created": SessionCreated.parse,
    "session.updated": SessionCreated.parse,
    "error": ErrorEvent.parse,
    "response.output_item.added": OutputItemAdded.parse,
    "output_audio_buffer.started": OutputAudioBuffer.parse,
    "output_audio_buffer.stopped": OutputAudioBuffer.parse,
    "output_audio_buffer.cleared": OutputAudioBuffer.parse,
    "response.output_audio_transcript.done": Transcript.parse,
    "conversation.item.input_audio_transcription.completed": Transcript.parse,
}


def parse_realtime(text: str | bytes) -> RealtimeServerEvent:
    """Parse one server event; unknown ``type`` -> ``Unknown(raw)``."""
    try:
        d = orjson.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RealtimeMalformedJson(f"Realtime event is not valid JSON: {exc}") from None
    if type(d) is not dict:
        raise RealtimeMalformedJson("Realtime event is not a JSON object")
    kind = d.get("type")
    if type(kind) is not str:
        raise RealtimeWrongFieldType("type", "a string", kind, "?")
    parser = _PARSERS.get(kind)
    if parser is None:
        return Unknown(d)
    event: RealtimeServerEvent = parser(d)
    return event
