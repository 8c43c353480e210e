"""The Realtime fields the call core reads beyond audio, parsed into the events' own fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.protocols.realtime import ResponseLifecycle, SessionAudioFormats, SessionCreated, parse_realtime


def _session_updated(session: dict[str, Any]) -> SessionCreated:
    event = parse_realtime(json.dumps({"type": "session.updated", "event_id": "e", "session": session}))
    assert isinstance(event, SessionCreated)
    return event


def test_a_session_echoes_its_audio_formats() -> None:
    event = _session_updated({"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}},
        "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"}}})
    assert event.audio == SessionAudioFormats(input="audio/pcm", output="audio/pcmu")
    assert json.loads(event.serialize())["session"]["audio"]["output"]["voice"] == "alloy"  # kept whole


@pytest.mark.parametrize(("session", "formats"), [
    ({"type": "realtime"}, None),  # no audio object at all
    ({"audio": []}, None),
    ({"audio": {}}, SessionAudioFormats(None, None)),
    ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, SessionAudioFormats("audio/pcmu", None)),
    ({"audio": {"input": {"format": "audio/pcmu"}, "output": []}}, SessionAudioFormats(None, None)),
    ({"audio": {"input": {"format": {"type": 5}}, "output": {"format": {}}}}, SessionAudioFormats(None, None)),
])
def test_session_formats_are_read_leniently(session: dict[str, Any], formats: SessionAudioFormats | None) -> None:
    assert _session_updated(session).audio == formats


def test_a_constructed_session_event_reads_its_formats_too() -> None:
    event = SessionCreated("e", {"audio": {"output": {"format": {"type": "audio/pcm"}}}}, "session.updated")
    assert event.audio == SessionAudioFormats(None, "audio/pcm")


@pytest.mark.parametrize(("response", "rid", "status"), [
    ({"id": "resp_1", "object": "realtime.response", "status": "cancelled",
      "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": []}, "resp_1", "cancelled"),
    ({"id": "resp_2", "status": "completed"}, "resp_2", "completed"),
    ({"id": 7, "status": None}, None, None),
    ({}, None, None),
])
def test_response_done_carries_its_id_and_status(response: dict[str, Any], rid: str | None,
                                                  status: str | None) -> None:
    event = parse_realtime(json.dumps({"type": "response.done", "event_id": "e", "response": response}))
    assert isinstance(event, ResponseLifecycle)
    assert (event.response_id, event.status) == (rid, status)
    assert json.loads(event.serialize())["response"] == response
    assert ResponseLifecycle("response.done", "e", response) == event  # derived fields follow the response
