"""Twilio Media Streams messages, spoken as literal JSON in the documented shapes.

Shapes: https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import base64
import json

import pytest

from bridge.protocols.twilio import (
    DEFAULT_MAX_BYTES,
    BadBase64,
    ClearMessage,
    ConnectedMessage,
    DtmfMessage,
    InvalidNumber,
    MalformedJson,
    MarkMessage,
    MediaFormat,
    MediaMessage,
    MessageTooLarge,
    MissingField,
    OutboundMark,
    OutboundMedia,
    StartMessage,
    StopMessage,
    TwilioProtocolError,
    UnknownTwilioEvent,
    WrongFieldType,
    inbound_frame,
    load_twilio,
    mark_text,
    media_text,
    parse_object,
    parse_twilio,
    parse_twilio_outbound,
)
from bridge.stand_ins import twilio_caller as caller

SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
ACCOUNT = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
CALL = "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
PAYLOAD = "no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhILBQYIDRg1qZSLh4aIjJevLBUMBgYHDBUsr5eMiIaHi5SpNRgNCAYF"

CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'

START = """{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "tracks": ["inbound", "outbound"],
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    "customParameters": {"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"}
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""

MEDIA = (
    '{"event": "media", "sequenceNumber": "3", "media": {"track": "outbound", "chunk": "1",'
    ' "timestamp": "5", "payload": "' + PAYLOAD + '"}, "streamSid": "' + SID + '"}'
)

DTMF = """{
  "event": "dtmf",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "sequenceNumber": "5",
  "dtmf": {"track": "inbound_track", "digit": "1"}
}"""

MARK = """{
  "event": "mark",
  "sequenceNumber": "4",
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
  "mark": {"name": "my label"}
}"""

STOP = """{
  "event": "stop",
  "sequenceNumber": "5",
  "stop": {
    "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
  },
  "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
}"""

OUT_MEDIA = '{"event": "media", "streamSid": "' + SID + '", "media": {"payload": "a3242sa="}}'
OUT_MARK = '{"event": "mark", "streamSid": "' + SID + '", "mark": {"name": "my label"}}'
OUT_CLEAR = '{"event": "clear", "streamSid": "' + SID + '"}'

INBOUND = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]
OUTBOUND = [OUT_MEDIA, OUT_MARK, OUT_CLEAR]


# --------------------------------------------------------------------------- documented shapes


def test_connected_has_no_stream_sid() -> None:
    msg = parse_twilio(CONNECTED)
    assert msg == ConnectedMessage(protocol="Call", version="1.0.0")
    assert "streamSid" not in json.loads(msg.serialize())


def test_start_keeps_every_field() -> None:
    msg = parse_twilio(START)
    assert msg == StartMessage(
        sequence_number=1,
        stream_sid=SID,
        account_sid=ACCOUNT,
        start_stream_sid=SID,
        call_sid=CALL,
        tracks=("inbound", "outbound"),
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
        media_format=MediaFormat(encoding="audio/x-mulaw", sample_rate=8000, channels=1),
    )


def test_start_without_custom_parameters_reads_empty() -> None:
    d = json.loads(START)
    del d["start"]["customParameters"]
    msg = parse_twilio(json.dumps(d))
    assert isinstance(msg, StartMessage)
    assert msg.custom_parameters == {}


def test_media_numbers_arrive_as_strings_and_parse_to_int() -> None:
    msg = parse_twilio(MEDIA)
    assert msg == MediaMessage(
        sequence_number=3, stream_sid=SID, track="outbound", chunk=1, timestamp=5, payload=PAYLOAD
    )


def test_inbound_frame_reads_only_the_callers_well_formed_media() -> None:
    """The documented media message is on the outbound track: not the caller's. On ``inbound`` it is
    read as (chunk, timestamp, payload); a mark, or media with a bad field, is not."""
    assert inbound_frame(load_twilio(MEDIA)) is None
    inbound = load_twilio(MEDIA.replace('"outbound"', '"inbound"'))
    assert inbound_frame(inbound) == (1, 5, PAYLOAD)
    assert parse_object(inbound) == MediaMessage(3, SID, "inbound", 1, 5, PAYLOAD)
    assert inbound_frame(load_twilio(MARK)) is None
    assert inbound_frame(load_twilio(MEDIA.replace('"outbound"', '"inbound"').replace('"1"', '"+1"'))) is None


def test_media_audio_decodes_payload() -> None:
    audio = bytes(range(160))
    text = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "2",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "0",
                "payload": base64.b64encode(audio).decode(),
            },
            "streamSid": SID,
        }
    )
    msg = parse_twilio(text)
    assert isinstance(msg, MediaMessage)
    assert msg.audio() == audio


def test_dtmf() -> None:
    assert parse_twilio(DTMF) == DtmfMessage(
        sequence_number=5, stream_sid=SID, track="inbound_track", digit="1"
    )


def test_mark() -> None:
    assert parse_twilio(MARK) == MarkMessage(sequence_number=4, stream_sid=SID, name="my label")


def test_stop() -> None:
    assert parse_twilio(STOP) == StopMessage(
        sequence_number=5, stream_sid=SID, account_sid=ACCOUNT, call_sid=CALL
    )


def test_bytes_frame_parses_like_text() -> None:
    assert parse_twilio(MEDIA.encode()) == parse_twilio(MEDIA)


def test_outbound_shapes() -> None:
    assert parse_twilio_outbound(OUT_MEDIA) == OutboundMedia(stream_sid=SID, payload="a3242sa=")
    assert parse_twilio_outbound(OUT_MARK) == OutboundMark(stream_sid=SID, name="my label")
    assert parse_twilio_outbound(OUT_CLEAR) == ClearMessage(stream_sid=SID)


def test_outbound_media_from_audio() -> None:
    msg = OutboundMedia.from_audio(SID, b"\xff" * 160)
    assert json.loads(msg.serialize()) == {
        "event": "media",
        "streamSid": SID,
        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    assert msg.audio() == b"\xff" * 160


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("text", INBOUND)
def test_inbound_round_trip(text: str) -> None:
    msg = parse_twilio(text)
    out = msg.serialize()
    assert parse_twilio(out) == msg
    # Same JSON document as Twilio's, numbers still strings, same key order.
    assert json.loads(out) == json.loads(text)
    assert list(json.loads(out)) == list(json.loads(text))


@pytest.mark.parametrize("text", OUTBOUND)
def test_outbound_round_trip(text: str) -> None:
    msg = parse_twilio_outbound(text)
    out = msg.serialize()
    assert parse_twilio_outbound(out) == msg
    assert json.loads(out) == json.loads(text)


def test_serialize_writes_numbers_as_strings() -> None:
    msg = MediaMessage(
        sequence_number=70000,
        stream_sid=SID,
        track="inbound",
        chunk=69999,
        timestamp=1399980,
        payload="",
    )
    d = json.loads(msg.serialize())
    assert d["sequenceNumber"] == "70000"
    assert d["media"]["chunk"] == "69999"
    assert d["media"]["timestamp"] == "1399980"
    start = json.loads(parse_twilio(START).serialize())
    assert start["start"]["mediaFormat"]["sampleRate"] == 8000  # a JSON number, as documented


# --------------------------------------------------------------------------- unknown events


def test_unknown_event_is_returned_not_raised() -> None:
    text = '{"event": "futureThing", "streamSid": "MZ1", "futureThing": {"x": "1"}}'
    msg = parse_twilio(text)
    assert msg == UnknownTwilioEvent({"event": "futureThing", "streamSid": "MZ1", "futureThing": {"x": "1"}})
    assert isinstance(msg, UnknownTwilioEvent)
    assert msg.event == "futureThing"
    assert json.loads(msg.serialize()) == json.loads(text)


def test_clear_from_twilio_is_unknown_and_start_to_twilio_is_unknown() -> None:
    assert isinstance(parse_twilio(OUT_CLEAR), UnknownTwilioEvent)
    assert isinstance(parse_twilio_outbound(START), UnknownTwilioEvent)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("text", ["", "{", "not json", '{"event": "media",}', b"\xff\xfe{"])
def test_malformed_json(text: str | bytes) -> None:
    with pytest.raises(MalformedJson):
        parse_twilio(text)


@pytest.mark.parametrize("text", ["[]", '"media"', "42", "null"])
def test_top_level_must_be_object(text: str) -> None:
    with pytest.raises(WrongFieldType) as info:
        parse_twilio(text)
    assert info.value.path == "$"


def test_missing_event() -> None:
    with pytest.raises(MissingField) as info:
        parse_twilio('{"streamSid": "MZ1"}')
    assert info.value.path == "event"


def test_event_not_a_string() -> None:
    with pytest.raises(WrongFieldType) as info:
        parse_twilio('{"event": 7}')
    assert info.value.path == "event"


def _without(text: str, path: str) -> str:
    d = json.loads(text)
    *parents, leaf = path.split(".")
    node = d
    for key in parents:
        node = node[key]
    del node[leaf]
    return json.dumps(d)


def _with(text: str, path: str, value: object) -> str:
    d = json.loads(text)
    *parents, leaf = path.split(".")
    node = d
    for key in parents:
        node = node[key]
    node[leaf] = value
    return json.dumps(d)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (CONNECTED, "protocol"),
        (CONNECTED, "version"),
        (START, "sequenceNumber"),
        (START, "streamSid"),
        (START, "start"),
        (START, "start.accountSid"),
        (START, "start.streamSid"),
        (START, "start.callSid"),
        (START, "start.tracks"),
        (START, "start.mediaFormat"),
        (START, "start.mediaFormat.encoding"),
        (START, "start.mediaFormat.sampleRate"),
        (START, "start.mediaFormat.channels"),
        (MEDIA, "sequenceNumber"),
        (MEDIA, "streamSid"),
        (MEDIA, "media"),
        (MEDIA, "media.track"),
        (MEDIA, "media.chunk"),
        (MEDIA, "media.timestamp"),
        (MEDIA, "media.payload"),
        (DTMF, "sequenceNumber"),
        (DTMF, "dtmf.digit"),
        (DTMF, "dtmf.track"),
        (MARK, "mark.name"),
        (MARK, "streamSid"),
        (STOP, "stop.callSid"),
        (STOP, "stop.accountSid"),
        (STOP, "sequenceNumber"),
    ],
)
def test_missing_field_names_its_path(text: str, path: str) -> None:
    with pytest.raises(MissingField) as info:
        parse_twilio(_without(text, path))
    assert info.value.path == path
    assert path in str(info.value)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (OUT_MEDIA, "media.payload"),
        (OUT_MEDIA, "streamSid"),
        (OUT_MARK, "mark.name"),
        (OUT_CLEAR, "streamSid"),
    ],
)
def test_outbound_missing_field(text: str, path: str) -> None:
    with pytest.raises(MissingField) as info:
        parse_twilio_outbound(_without(text, path))
    assert info.value.path == path


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        (MEDIA, "sequenceNumber", 3),  # a number where Twilio sends a string
        (MEDIA, "media.chunk", 1),
        (MEDIA, "media.timestamp", 5.0),
        (MEDIA, "media.payload", None),
        (MEDIA, "media.track", ["inbound"]),
        (MEDIA, "streamSid", 1),
        (MEDIA, "media", "x"),
        (MEDIA, "media", []),
        (START, "start.tracks", "inbound"),
        (START, "start.customParameters", ["a"]),
        (START, "start.mediaFormat.sampleRate", "8000"),
        (START, "start.mediaFormat.channels", True),
        (MARK, "mark", None),
        (DTMF, "dtmf.digit", 1),
        (STOP, "stop", "gone"),
        (CONNECTED, "version", 1.0),
    ],
)
def test_wrong_type_names_its_path(text: str, path: str, value: object) -> None:
    with pytest.raises(WrongFieldType) as info:
        parse_twilio(_with(text, path, value))
    assert info.value.path == path
    assert not isinstance(info.value, InvalidNumber)


def test_wrong_type_inside_array_and_parameters() -> None:
    with pytest.raises(WrongFieldType) as info:
        parse_twilio(_with(START, "start.tracks", ["inbound", 2]))
    assert info.value.path == "start.tracks[1]"
    with pytest.raises(WrongFieldType) as info:
        parse_twilio(_with(START, "start.customParameters", {"n": 1}))
    assert info.value.path == "start.customParameters.n"


@pytest.mark.parametrize("value", ["", "-1", "+1", "1.5", " 1", "1_000", "0x10", "١٢", "abc"])
@pytest.mark.parametrize("path", ["sequenceNumber", "media.chunk", "media.timestamp"])
def test_numeric_strings_must_be_decimal(path: str, value: str) -> None:
    with pytest.raises(InvalidNumber) as info:
        parse_twilio(_with(MEDIA, path, value))
    assert info.value.path == path


@pytest.mark.parametrize("payload", ["not base64!", "abc", "a===", "é"])
def test_bad_base64_raises_on_decode_only(payload: str) -> None:
    msg = parse_twilio(_with(MEDIA, "media.payload", payload))  # parse stays lazy
    assert isinstance(msg, MediaMessage)
    with pytest.raises(BadBase64):
        msg.audio()
    out = parse_twilio_outbound(_with(OUT_MEDIA, "media.payload", payload))
    assert isinstance(out, OutboundMedia)
    with pytest.raises(BadBase64):
        out.audio()


def test_oversize_is_rejected_before_parsing() -> None:
    big = _with(MEDIA, "media.payload", "A" * DEFAULT_MAX_BYTES)
    with pytest.raises(MessageTooLarge) as info:
        parse_twilio(big)
    assert info.value.max_bytes == DEFAULT_MAX_BYTES
    assert info.value.size == len(big)
    with pytest.raises(MessageTooLarge):
        parse_twilio(big.encode())
    with pytest.raises(MessageTooLarge):
        parse_twilio_outbound(big)


def test_max_bytes_is_a_parameter_and_counts_utf8_bytes() -> None:
    assert isinstance(parse_twilio(MEDIA, max_bytes=len(MEDIA)), MediaMessage)
    with pytest.raises(MessageTooLarge):
        parse_twilio(MEDIA, max_bytes=len(MEDIA) - 1)
    text = _with(MARK, "mark.name", "é" * 40)  # ensure_ascii escapes: make it real UTF-8
    text = text.replace("\\u00e9", "é")
    n_bytes = len(text.encode())
    assert n_bytes > len(text)
    assert isinstance(parse_twilio(text, max_bytes=n_bytes), MarkMessage)
    with pytest.raises(MessageTooLarge):
        parse_twilio(text, max_bytes=n_bytes - 1)


def test_every_error_is_a_twilio_protocol_error_and_a_value_error() -> None:
    for exc in (MalformedJson, MessageTooLarge, MissingField, WrongFieldType, InvalidNumber, BadBase64):
        assert issubclass(exc, TwilioProtocolError)
        assert issubclass(exc, ValueError)


def test_error_message_is_clear() -> None:
    with pytest.raises(WrongFieldType) as info:
        parse_twilio(_with(MEDIA, "media.chunk", 1))
    assert str(info.value) == "field 'media.chunk' in 'media' message must be a decimal string, got number 1"


def test_the_rigs_speak_twilio_through_this_module() -> None:
    """The simulated caller's messages parse back to what they say (its media message is built as
    text for speed; the rest come from this module's serializers)."""

    assert parse_twilio(caller.media_message("MZ1", 7, 6, 120, "//8=")) == MediaMessage(7, "MZ1", "inbound", 6, 120,
                                                                                         "//8=")
    start = parse_twilio(caller.start_message("MZ1", "CA1", {"tenant": "t"}))
    assert isinstance(start, StartMessage)
    assert (start.call_sid, dict(start.custom_parameters)) == ("CA1", {"tenant": "t"})
    stop = parse_twilio(caller.stop_message("MZ1", "CA1", 9))
    assert isinstance(stop, StopMessage) and (stop.sequence_number, stop.call_sid) == (9, "CA1")
    assert isinstance(parse_twilio(caller.CONNECTED), ConnectedMessage)


@pytest.mark.parametrize(("sid", "name"), [(SID, "r1:item:7"), ('M"Z\\1', "n\u00e9 \"q\" \n"), ("", "")])
def test_outbound_mark_text_is_the_json_of_its_fields(sid: str, name: str) -> None:
    """The mark is built as text for speed; the standard library must read back the same fields."""
    mark = OutboundMark(sid, name)
    assert json.loads(mark.serialize()) == {"event": "mark", "streamSid": sid, "mark": {"name": name}}
    assert parse_twilio_outbound(mark.serialize()) == mark


@pytest.mark.parametrize("sid", [SID, 'M"Z\\1', ""])
def test_media_and_mark_text_are_the_json_of_their_fields(sid: str) -> None:
    """What the core writes for AI audio, built as text: the standard library reads back the fields,
    the payload is the standard base64 of the audio, and the records serialize the same text."""
    audio = bytes(range(256)) * 3 + b"\x00\xff"
    text = media_text(sid, audio)
    assert json.loads(text) == {"event": "media", "streamSid": sid,
                                "media": {"payload": base64.b64encode(audio).decode("ascii")}}
    assert text == OutboundMedia.from_audio(sid, audio).serialize()
    assert json.loads(mark_text(sid, "m7")) == {"event": "mark", "streamSid": sid, "mark": {"name": "m7"}}
