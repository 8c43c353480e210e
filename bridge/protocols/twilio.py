"""Twilio Media Streams WebSocket messages (bidirectional ``<Connect><Stream>``), sans-I/O.

Source: https://www.twilio.com/docs/voice/media-streams/websocket-messages
(checked against the documented example shapes; key order below follows those examples).

From Twilio (``parse_twilio``): ``connected`` (no streamSid), ``start``, ``media``, ``dtmf``,
``mark`` (echo of a mark we sent: the audio before it has played, or ``clear`` dropped it) and
``stop``. To Twilio (``parse_twilio_outbound``, for fakes and replay): ``media``, ``mark``,
``clear``. Every message is a frozen dataclass whose ``parse`` and ``serialize`` sit side by side.

Contract:
- Twilio sends ``sequenceNumber``, ``media.chunk`` and ``media.timestamp`` as decimal STRINGS;
  they are parsed to ``int`` and serialized back as strings. ``mediaFormat.sampleRate`` and
  ``channels`` are JSON numbers.
- ``payload`` stays the base64 text (no decode on the hot path); ``audio()`` decodes it and
  raises ``BadBase64``.
- Malformed JSON, a missing field, a wrong type, a non-decimal numeric string, bad base64 and an
  oversize message raise a subclass of ``TwilioProtocolError`` (a ``ValueError``) naming the
  field path. An unknown ``event`` is returned as ``UnknownTwilioEvent(raw)``, never raised.
- Keys not listed here are not kept on the known messages (the capture keeps the raw text).
- A missing ``start.customParameters`` reads as ``{}`` (Twilio sends ``{}`` when none are set).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeAlias

import orjson

from bridge.protocols import compact_json

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BadBase64",
    "ClearMessage",
    "ConnectedMessage",
    "DtmfMessage",
    "InvalidNumber",
    "MalformedJson",
    "MarkMessage",
    "MediaFormat",
    "MediaMessage",
    "MessageTooLarge",
    "MissingField",
    "OutboundMark",
    "OutboundMedia",
    "StartMessage",
    "StopMessage",
    "TwilioMessage",
    "TwilioOutbound",
    "TwilioProtocolError",
    "UnknownTwilioEvent",
    "WrongFieldType",
    "inbound_frame",
    "load_twilio",
    "parse_object",
    "parse_twilio",
    "parse_twilio_outbound",
]

DEFAULT_MAX_BYTES: Final = 64 * 1024



# --------------------------------------------------------------------------- errors


class TwilioProtocolError(ValueError):
    """Base of every error raised on a Media Streams message that breaks the documented shape."""


class MalformedJson(TwilioProtocolError):
    """The frame is not UTF-8 JSON."""


class MessageTooLarge(TwilioProtocolError):
    """The frame is over ``max_bytes`` (UTF-8 bytes); it is rejected before ``json.loads``."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(f"Twilio message is {size} bytes, over the {max_bytes}-byte limit")
        self.size = size
        self.max_bytes = max_bytes


class MissingField(TwilioProtocolError):
    """A required field is absent; ``path`` is dotted, e.g. ``media.payload``."""

    def __init__(self, path: str, event: str | None = None) -> None:
        where = f" in {event!r} message" if event else ""
        super().__init__(f"missing field {path!r}{where}")
        self.path = path
        self.event = event


class WrongFieldType(TwilioProtocolError):
    """A field has the wrong JSON type; ``path`` is ``$`` for the top level."""

    def __init__(self, path: str, expected: str, value: object, event: str | None = None) -> None:
        where = f" in {event!r} message" if event else ""
        super().__init__(f"field {path!r}{where} must be {expected}, got {_json_type(value)} {_short(value, path)}")
        self.path = path
        self.expected = expected
        self.value = value
        self.event = event


class InvalidNumber(WrongFieldType):
    """A numeric field Twilio sends as a string (sequenceNumber, chunk, timestamp) is not decimal."""


class BadBase64(TwilioProtocolError):
    """A ``media.payload`` that is not valid base64."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: object, path: str = "") -> str:
    """The value for an error message, unless it may carry PHI: nothing under
    ``customParameters`` (patient ids live there, whatever their type) and no array or object
    (a whole message could be inside) is ever quoted, only its size."""
    if path.startswith("start.customParameters") or isinstance(value, list | dict):
        size = f"{len(value)} items" if isinstance(value, list | dict | str) else "a value"
        return f"(withheld: {size})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- field readers


def _obj(parent: Mapping[str, Any], key: str, path: str, event: str) -> dict[str, Any]:
    try:
        value = parent[key]
    except KeyError:
        raise MissingField(path, event) from None
    if type(value) is not dict:
        raise WrongFieldType(path, "an object", value, event)
    return value


def _str(parent: Mapping[str, Any], key: str, path: str, event: str) -> str:
    try:
        value = parent[key]
    except KeyError:
        raise MissingField(path, event) from None
    if type(value) is not str:
        raise WrongFieldType(path, "a string", value, event)
    return value


# Counters and millisecond timestamps below 10^15 (31,000 years of audio): anything longer is
# not Twilio's, and bounding it here keeps absurd numbers out of every later computation.
MAX_DIGITS = 15


def _numstr(parent: Mapping[str, Any], key: str, path: str, event: str) -> int:
    try:
        value = parent[key]
    except KeyError:
        raise MissingField(path, event) from None
    if type(value) is not str:
        raise WrongFieldType(path, "a decimal string", value, event)
    if not (value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS):
        raise InvalidNumber(path, f"a decimal string of at most {MAX_DIGITS} digits", value, event)
    return int(value)


def _int(parent: Mapping[str, Any], key: str, path: str, event: str) -> int:
    try:
        value = parent[key]
    except KeyError:
        raise MissingField(path, event) from None
    if type(value) is not int:
        raise WrongFieldType(path, "an integer", value, event)
    return value


def load_twilio(text: str | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The JSON object of one text frame, for ``inbound_frame`` and ``parse_object``: a size check,
    then one ``orjson.loads``. Raises ``MessageTooLarge``, ``MalformedJson`` or ``WrongFieldType``."""
    size = len(text)
    if size > max_bytes:
        raise MessageTooLarge(size, max_bytes)
    if isinstance(text, str) and size * 4 > max_bytes:
        # A str's UTF-8 size is at most 4 bytes a character: only measure when it could matter.
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise MessageTooLarge(size, max_bytes)
    try:
        data = orjson.loads(text)
    except (ValueError, RecursionError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise MalformedJson(f"Twilio message is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise WrongFieldType("$", "an object", data)
    return data


def _decode_base64(payload: str) -> bytes:
    # strict_mode validates in C what b64decode(validate=True) checks with a regex first
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise BadBase64(f"media.payload is not valid base64: {exc}") from None


def _dumps(obj: Mapping[str, Any]) -> str:
    return compact_json.dumps(obj)


# --------------------------------------------------------------------------- from Twilio


@dataclass(frozen=True, slots=True)
class ConnectedMessage:
    """First message on the socket; it carries no streamSid."""

    protocol: str
    version: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> ConnectedMessage:
        return cls(
            protocol=_str(d, "protocol", "protocol", "connected"),
            version=_str(d, "version", "version", "connected"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": self.protocol, "version": self.version}

    def serialize(self) -> str:
        return _dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """``start.mediaFormat``: audio/x-mulaw, 8000 Hz, 1 channel on every Twilio call today."""

    encoding: str
    sample_rate: int
    channels: int

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> MediaFormat:
        return cls(
            encoding=_str(d, "encoding", "start.mediaFormat.encoding", "start"),
            sample_rate=_int(d, "sampleRate", "start.mediaFormat.sampleRate", "start"),
            channels=_int(d, "channels", "start.mediaFormat.channels", "start"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "sampleRate": self.sample_rate, "channels": self.channels}


@dataclass(frozen=True)
class StartMessage:
    """Stream metadata, sent once after ``connected``.

    ``start.streamSid`` is kept apart from the top-level ``streamSid`` (``start_stream_sid``);
    Twilio sends the same value in both.
    """

    sequence_number: int
    stream_sid: str
    account_sid: str
    start_stream_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: Mapping[str, str]
    media_format: MediaFormat

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> StartMessage:
        s = _obj(d, "start", "start", "start")
        tracks = s.get("tracks")
        if tracks is None:
            raise MissingField("start.tracks", "start")
        if type(tracks) is not list:
            raise WrongFieldType("start.tracks", "an array of strings", tracks, "start")
        for i, track in enumerate(tracks):
            if type(track) is not str:
                raise WrongFieldType(f"start.tracks[{i}]", "a string", track, "start")
        params = s.get("customParameters", {})
        if type(params) is not dict:
            raise WrongFieldType("start.customParameters", "an object", params, "start")
        for key, value in params.items():
            if type(value) is not str:
                raise WrongFieldType(f"start.customParameters.{key}", "a string", value, "start")
        return cls(
            sequence_number=_numstr(d, "sequenceNumber", "sequenceNumber", "start"),
            stream_sid=_str(d, "streamSid", "streamSid", "start"),
            account_sid=_str(s, "accountSid", "start.accountSid", "start"),
            start_stream_sid=_str(s, "streamSid", "start.streamSid", "start"),
            call_sid=_str(s, "callSid", "start.callSid", "start"),
            tracks=tuple(tracks),
            custom_parameters=dict(params),
            media_format=MediaFormat.parse(_obj(s, "mediaFormat", "start.mediaFormat", "start")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "start",
            "sequenceNumber": str(self.sequence_number),
            "start": {
                "accountSid": self.account_sid,
                "streamSid": self.start_stream_sid,
                "callSid": self.call_sid,
                "tracks": list(self.tracks),
                "mediaFormat": self.media_format.to_json(),
                "customParameters": dict(self.custom_parameters),
            },
            "streamSid": self.stream_sid,
        }

    def serialize(self) -> str:
        return _dumps(self.to_json())


def _media_fields(d: Mapping[str, Any]) -> tuple[int, str, str, int, int, str] | None:
    """A ``media`` message's fields (sequence number, stream SID, track, chunk, timestamp, payload) if
    every one is as Twilio sends it; None otherwise (``MediaMessage._parse_slow`` then names the
    culprit). Hot path, one per 20 ms per call: plain dict reads and exact type checks."""
    try:
        m = d["media"]
        seq = d["sequenceNumber"]
        sid = d["streamSid"]
        track = m["track"]
        chunk = m["chunk"]
        ts = m["timestamp"]
        payload = m["payload"]
    except (KeyError, TypeError):
        return None
    if (
        type(sid) is str
        and type(track) is str
        and type(payload) is str
        and type(seq) is str
        and type(chunk) is str
        and type(ts) is str
        and seq.isascii()
        and seq.isdigit()
        and chunk.isascii()
        and chunk.isdigit()
        and ts.isascii()
        and ts.isdigit()
        and len(seq) <= MAX_DIGITS
        and len(chunk) <= MAX_DIGITS
        and len(ts) <= MAX_DIGITS
    ):
        return int(seq), sid, track, int(chunk), int(ts), payload
    return None


def inbound_frame(d: Mapping[str, Any]) -> tuple[int, int, str] | None:
    """(chunk, timestamp in ms, base64 payload) of a well-formed ``media`` message on the inbound
    track, the caller's audio; None for any other message (``parse_object`` reads those)."""
    if d.get("event") != "media":
        return None
    fields = _media_fields(d)
    if fields is None or fields[2] != "inbound":
        return None
    return fields[3], fields[4], fields[5]


@dataclass(slots=True)  # not frozen: one per 20 ms per call, and frozen __init__ costs 5x
class MediaMessage:
    """One caller audio chunk (20 ms of mu-law at 8 kHz = 160 bytes on a phone call).

    ``chunk`` counts from 1 per track; ``timestamp`` is milliseconds since the stream began.
    """

    sequence_number: int
    stream_sid: str
    track: str
    chunk: int
    timestamp: int
    payload: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> MediaMessage:
        fields = _media_fields(d)
        return cls._parse_slow(d) if fields is None else cls(*fields)

    @classmethod
    def _parse_slow(cls, d: Mapping[str, Any]) -> MediaMessage:
        m = _obj(d, "media", "media", "media")
        return cls(
            sequence_number=_numstr(d, "sequenceNumber", "sequenceNumber", "media"),
            stream_sid=_str(d, "streamSid", "streamSid", "media"),
            track=_str(m, "track", "media.track", "media"),
            chunk=_numstr(m, "chunk", "media.chunk", "media"),
            timestamp=_numstr(m, "timestamp", "media.timestamp", "media"),
            payload=_str(m, "payload", "media.payload", "media"),
        )

    def audio(self) -> bytes:
        """The decoded payload; raises ``BadBase64``."""
        return _decode_base64(self.payload)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "media",
            "sequenceNumber": str(self.sequence_number),
            "media": {
                "track": self.track,
                "chunk": str(self.chunk),
                "timestamp": str(self.timestamp),
                "payload": self.payload,
            },
            "streamSid": self.stream_sid,
        }

    def serialize(self) -> str:
        return _dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class DtmfMessage:
    """A keypad digit on the caller's leg (bidirectional streams only; track ``inbound_track``)."""

    sequence_number: int
    stream_sid: str
    track: str
    digit: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> DtmfMessage:
        t = _obj(d, "dtmf", "dtmf", "dtmf")
        return cls(
            sequence_number=_numstr(d, "sequenceNumber", "sequenceNumber", "dtmf"),
            stream_sid=_str(d, "streamSid", "streamSid", "dtmf"),
            track=_str(t, "track", "dtmf.track", "dtmf"),
            digit=_str(t, "digit", "dtmf.digit", "dtmf"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "dtmf",
            "streamSid": self.stream_sid,
            "sequenceNumber": str(self.sequence_number),
            "dtmf": {"track": self.track, "digit": self.digit},
        }

    def serialize(self) -> str:
        return _dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class MarkMessage:
    """Twilio's echo of a mark we sent: the audio queued before it has played, or a ``clear``
    dropped it (then it does NOT mean played)."""

    sequence_number: int
    stream_sid: str
    name: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> MarkMessage:
        k = _obj(d, "mark", "mark", "mark")
        return cls(
            sequence_number=_numstr(d, "sequenceNumber", "sequenceNumber", "mark"),
            stream_sid=_str(d, "streamSid", "streamSid", "mark"),
            name=_str(k, "name", "mark.name", "mark"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "mark",
            "sequenceNumber": str(self.sequence_number),
            "streamSid": self.stream_sid,
            "mark": {"name": self.name},
        }

    def serialize(self) -> str:
        return _dumps(self.to_json())


@dataclass(frozen=True, slots=True)
class StopMessage:
    """The stream has ended (call hung up, or the stream was stopped)."""

    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> StopMessage:
        s = _obj(d, "stop", "stop", "stop")
        return cls(
            sequence_number=_numstr(d, "sequenceNumber", "sequenceNumber", "stop"),
            stream_sid=_str(d, "streamSid", "streamSid", "stop"),
            account_sid=_str(s, "accountSid", "stop.accountSid", "stop"),
            call_sid=_str(s, "callSid", "stop.callSid", "stop"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event": "stop",
            "sequenceNumber": str(self.sequence_number),
            "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            "streamSid": self.stream_sid,
        }

    def serialize(self) -> str:
        return _dumps(self.to_json())


@dataclass(frozen=True)
class UnknownTwilioEvent:
    """A well-formed JSON object whose ``event`` this module does not know; kept verbatim."""

    raw: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.raw.get("event"))

    def to_json(self) -> dict[str, Any]:
        return self.raw

    def serialize(self) -> str:
        return _dumps(self.raw)


TwilioMessage: TypeAlias = (
    ConnectedMessage
    | StartMessage
    | MediaMessage
    | DtmfMessage
    | MarkMessage
    | StopMessage
    | UnknownTwilioEvent
)


# --------------------------------------------------------------------------- to Twilio


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    """Audio for Twilio to queue and play: base64 mu-law 8 kHz, no file header."""

    stream_sid: str
    payload: str

    @classmethod
    def from_audio(cls, stream_sid: str, audio: bytes) -> OutboundMedia:
        return cls(stream_sid, base64.b64encode(audio).decode("ascii"))

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutboundMedia:
        m = _obj(d, "media", "media", "media")
        return cls(
            stream_sid=_str(d, "streamSid", "streamSid", "media"),
            payload=_str(m, "payload", "media.payload", "media"),
        )

    def audio(self) -> bytes:
        """The decoded payload; raises ``BadBase64``."""
        return _decode_base64(self.payload)

    def to_json(self) -> dict[str, Any]:
        return {"event": "media", "streamSid": self.stream_sid, "media": {"payload": self.payload}}

    def serialize(self) -> str:
        return _media_text(self.stream_sid, self.payload)


def media_text(stream_sid: str, audio: bytes) -> str:
    """``OutboundMedia.from_audio(stream_sid, audio).serialize()`` without the record: every
    message of AI audio goes this way."""
    return _media_text(stream_sid, binascii.b2a_base64(audio, newline=False).decode("ascii"))


def _media_text(stream_sid: str, payload: str) -> str:
    # base64 needs no escaping; the sid is quoted once a call
    return '{"event":"media","streamSid":' + _quoted(stream_sid) + ',"media":{"payload":"' + payload + '"}}'


def mark_text(stream_sid: str, name: str) -> str:
    """``OutboundMark(stream_sid, name).serialize()`` without the record (a mark per message of AI audio)."""
    return '{"event":"mark","streamSid":' + _quoted(stream_sid) + ',"mark":{"name":' + compact_json.dumps(name) + '}}'


@lru_cache(maxsize=4096)
def _quoted(value: str) -> str:
    """``value`` as a JSON string literal."""
    return compact_json.dumps(value)


@dataclass(frozen=True, slots=True)
class OutboundMark:
    """A named point in the outbound audio queue; Twilio echoes it as a ``MarkMessage``."""

    stream_sid: str
    name: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> OutboundMark:
        k = _obj(d, "mark", "mark", "mark")
        return cls(
            stream_sid=_str(d, "streamSid", "streamSid", "mark"),
            name=_str(k, "name", "mark.name", "mark"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": self.name}}

    def serialize(self) -> str:
        return mark_text(self.stream_sid, self.name)


@dataclass(frozen=True, slots=True)
class ClearMessage:
    """Empty Twilio's outbound audio queue (barge-in); every pending mark is echoed back."""

    stream_sid: str

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> ClearMessage:
        return cls(stream_sid=_str(d, "streamSid", "streamSid", "clear"))

    def to_json(self) -> dict[str, Any]:
        return {"event": "clear", "streamSid": self.stream_sid}

    def serialize(self) -> str:
        return _dumps(self.to_json())


TwilioOutbound: TypeAlias = OutboundMedia | OutboundMark | ClearMessage | UnknownTwilioEvent


# --------------------------------------------------------------------------- entry points


def _event(d: Mapping[str, Any]) -> str:
    try:
        event = d["event"]
    except KeyError:
        raise MissingField("event") from None
    if type(event) is not str:
        raise WrongFieldType("event", "a string", event)
    return event


def parse_twilio(text: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> TwilioMessage:
    """Parse one text frame Twilio sent to the bridge.

    Raises a ``TwilioProtocolError`` subclass on a malformed frame; returns
    ``UnknownTwilioEvent`` for an event not listed in the module docstring.
    """
    return parse_object(load_twilio(text, max_bytes))


def parse_object(d: dict[str, Any]) -> TwilioMessage:
    """``parse_twilio`` of a frame already loaded by ``load_twilio``."""
    if d.get("event") == "media":  # 50 a second per call: before _event's checks, which only name a culprit
        return MediaMessage.parse(d)
    event = _event(d)
    if event == "mark":
        return MarkMessage.parse(d)
    if event == "dtmf":
        return DtmfMessage.parse(d)
    if event == "start":
        return StartMessage.parse(d)
    if event == "stop":
        return StopMessage.parse(d)
    if event == "connected":
        return ConnectedMessage.parse(d)
    return UnknownTwilioEvent(d)


def parse_twilio_outbound(text: str | bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> TwilioOutbound:
    """Parse one frame the bridge sends to Twilio (for fake callers, replay and tests)."""
    d = load_twilio(text, max_bytes)
    event = _event(d)
    if event == "media":
        return OutboundMedia.parse(d)
    if event == "mark":
        return OutboundMark.parse(d)
    if event == "clear":
        return ClearMessage.parse(d)
    return UnknownTwilioEvent(d)
