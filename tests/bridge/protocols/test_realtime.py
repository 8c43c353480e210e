"""OpenAI Realtime GA events: what the bridge sends validates against the openai package's models."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.protocols.realtime import (
    ContextItemCreate,
    ConversationItemTruncate,
    DtmfItemCreate,
    ErrorEvent,
    InputAudioBufferAppend,
    OutputAudioBuffer,
    OutputAudioDelta,
    OutputAudioDone,
    OutputItemAdded,
    RealtimeMalformedJson,
    RealtimeMissingField,
    RealtimeProtocolError,
    RealtimeWrongFieldType,
    ResponseCancel,
    ResponseLifecycle,
    SessionCreated,
    SessionUpdate,
    SpeechStarted,
    SpeechStopped,
    Transcript,
    Unknown,
    parse_realtime,
)

pydantic = pytest.importorskip("pydantic")
realtime_types = pytest.importorskip("openai.types.realtime")

CLIENT = pydantic.TypeAdapter(realtime_types.RealtimeClientEvent)
SERVER = pydantic.TypeAdapter(realtime_types.RealtimeServerEvent)

SENT = [
    SessionUpdate(),
    SessionUpdate("audio/pcm", "audio/pcm", instructions="Be brief.", voice="alloy", model="gpt-realtime"),
    InputAudioBufferAppend("//8="),
    InputAudioBufferAppend("//8=", event_id="evt_1"),
    ConversationItemTruncate(item_id="item_1", content_index=0, audio_end_ms=1500),
    DtmfItemCreate("5"),
    ContextItemCreate("user", "I need to move my appointment."),
    ContextItemCreate("assistant", "Sure, to which day?"),
    ResponseCancel(),
    ResponseCancel(response_id="resp_1"),
]


@pytest.mark.parametrize("event", SENT, ids=lambda e: type(e).__name__)
def test_sent_events_validate_against_openai_models(event: Any) -> None:
    text = event.serialize()
    model = CLIENT.validate_json(text, strict=True)
    assert model.model_dump(mode="json", exclude_unset=True) == json.loads(text)


def test_session_update_ga_shape() -> None:
    d = json.loads(SessionUpdate("audio/pcm", "audio/pcmu").serialize())
    assert d["session"]["type"] == "realtime"
    assert d["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert d["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert d["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad"}


SESSION = {"id": "sess_1", "object": "realtime.session", "type": "realtime", "model": "gpt-realtime"}
READ = [
    ('{"type":"session.created","event_id":"e1","session":' + json.dumps(SESSION) + "}", SessionCreated),
    ('{"type":"session.updated","event_id":"e2","session":' + json.dumps(SESSION) + "}", SessionCreated),
    (
        '{"type":"input_audio_buffer.speech_started","event_id":"e3","audio_start_ms":1000,"item_id":"i1"}',
        SpeechStarted,
    ),
    (
        '{"type":"input_audio_buffer.speech_stopped","event_id":"e4","audio_end_ms":2000,"item_id":"i1"}',
        SpeechStopped,
    ),
    (
        '{"type":"response.created","event_id":"e5","response":{"id":"resp_1","object":"realtime.response",'
        '"status":"in_progress","output":[]}}',
        ResponseLifecycle,
    ),
    (
        '{"type":"response.output_audio.delta","event_id":"e6","response_id":"resp_1","item_id":"i2",'
        '"output_index":0,"content_index":0,"delta":"//8="}',
        OutputAudioDelta,
    ),
    (
        '{"type":"response.output_audio.done","event_id":"e7","response_id":"resp_1","item_id":"i2",'
        '"output_index":0,"content_index":0}',
        OutputAudioDone,
    ),
    (
        '{"type":"response.done","event_id":"e8","response":{"id":"resp_1","object":"realtime.response",'
        '"status":"completed","output":[]}}',
        ResponseLifecycle,
    ),
    (
        '{"type":"error","event_id":"e9","error":{"type":"invalid_request_error","code":"session_expired",'
        '"message":"Your session hit the maximum duration of 60 minutes.","param":null,"event_id":null}}',
        ErrorEvent,
    ),
    (
        '{"type":"response.output_item.added","event_id":"e10","response_id":"resp_1","output_index":0,'
        '"item":{"id":"item_7","object":"realtime.item","type":"message","status":"in_progress",'
        '"role":"assistant","content":[]}}',
        OutputItemAdded,
    ),
    ('{"type":"output_audio_buffer.started","event_id":"e11","response_id":"resp_1"}', OutputAudioBuffer),
    ('{"type":"output_audio_buffer.stopped","event_id":"e12","response_id":"resp_1"}', OutputAudioBuffer),
    ('{"type":"output_audio_buffer.cleared","event_id":"e13","response_id":"resp_1"}', OutputAudioBuffer),
    (
        '{"type":"response.output_audio_transcript.done","event_id":"e14","response_id":"resp_1",'
        '"item_id":"item_7","output_index":0,"content_index":0,"transcript":"Hello there."}',
        Transcript,
    ),
    (
        '{"type":"conversation.item.input_audio_transcription.completed","event_id":"e15","item_id":"u1",'
        '"content_index":0,"transcript":"Hi.","usage":{"type":"duration","seconds":1}}',
        Transcript,
    ),
]


def test_the_events_the_core_reads_beyond_audio_are_modelled() -> None:
    assert parse_realtime(READ[-6][0]) == OutputItemAdded("resp_1", "item_7", {})
    assert [parse_realtime(t) for t, _ in READ[-5:-2]] == [
        OutputAudioBuffer("started", "resp_1", {}), OutputAudioBuffer("stopped", "resp_1", {}),
        OutputAudioBuffer("cleared", "resp_1", {})]
    assert [parse_realtime(t) for t, _ in READ[-2:]] == [Transcript("assistant", "Hello there.", {}),
                                                         Transcript("user", "Hi.", {})]


@pytest.mark.parametrize(("text", "cls"), READ, ids=lambda x: x if isinstance(x, type) else "")
def test_read_events_round_trip(text: str, cls: type) -> None:
    SERVER.validate_json(text)  # the literal is a real GA server event
    event = parse_realtime(text)
    assert isinstance(event, cls)
    out = event.serialize()
    assert json.loads(out) == json.loads(text)
    assert parse_realtime(out) == event


def test_delta_fields() -> None:
    event = parse_realtime(READ[5][0])
    assert event == OutputAudioDelta("e6", "resp_1", "i2", 0, 0, "//8=")


def test_response_id_and_error_fields() -> None:
    created = parse_realtime(READ[4][0])
    assert isinstance(created, ResponseLifecycle)
    assert created.response_id == "resp_1"
    err = parse_realtime(READ[8][0])
    assert isinstance(err, ErrorEvent)
    assert err.code == "session_expired"


def test_unknown_event_kept_raw() -> None:
    text = '{"type":"rate_limits.updated","event_id":"e","rate_limits":[]}'
    event = parse_realtime(text)
    assert event == Unknown({"type": "rate_limits.updated", "event_id": "e", "rate_limits": []})
    assert json.loads(event.serialize()) == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", "[]", "3"])
def test_malformed(text: str) -> None:
    with pytest.raises(RealtimeMalformedJson):
        parse_realtime(text)


def test_missing_and_wrong_fields() -> None:
    with pytest.raises(RealtimeMissingField) as missing:
        parse_realtime('{"type":"response.output_audio.delta","event_id":"e","response_id":"r"}')
    assert missing.value.path == "item_id"
    with pytest.raises(RealtimeWrongFieldType) as wrong:
        parse_realtime(READ[5][0].replace('"output_index":0', '"output_index":"0"'))
    assert wrong.value.path == "output_index"
    with pytest.raises(RealtimeWrongFieldType):
        parse_realtime('{"type": 1}')
    assert issubclass(RealtimeMissingField, RealtimeProtocolError)
