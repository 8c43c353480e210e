"""Hardening of the call core: numbers from the wire are bounded, every call ends with a report,
and a few thousand hostile messages (valid shapes, absurd values) never raise out of the core."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from bridge.core import call as call_module
from bridge.core.call import CallCore
from bridge.core.config import CallConfig
from bridge.core.events import CallEnded, Problem
from tests.bridge.core.test_call import FRAME, SID, STOP, events, media, start, started_core
from tests.reports import loose


def _report(core: CallCore) -> dict[str, Any]:
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    return loose(ended.report.to_json())


@pytest.mark.parametrize("field, value", [
    ("chunk", "9" * 400), ("timestamp", "1" + "0" * 160), ("sequenceNumber", "7" * 5000),
    ("chunk", "1" * 16),
])
def test_absurd_numbers_are_bad_messages_and_the_report_is_written(field: str, value: str) -> None:
    core = started_core()
    msg = json.loads(media(1))
    (msg if field == "sequenceNumber" else msg["media"])[field] = value
    core.receive_twilio(json.dumps(msg), 0.02)
    core.receive_twilio(media(1), 0.04)
    core.receive_twilio(STOP, 0.1)
    report = _report(core)
    assert report["counters"]["bad_message"] == 1
    assert report["mos"] is not None and report["inbound"]["frames"] == 1


def test_a_report_that_cannot_be_built_is_replaced_by_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> dict[str, Any]:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(call_module, "build_report", broken)
    core = started_core()
    core.receive_twilio(media(1), 0.02)
    core.receive_twilio(STOP, 0.1)
    evs = events(core)
    [ended] = [e for e in evs if isinstance(e, CallEnded)]
    report = ended.report.to_json()
    assert (report["call_sid"], report["end_reason"], report["mos"]) == ("CA1", "stop", None)
    assert report["counters"]["report_errors"] == 1
    assert "OverflowError" in report["error"]
    assert any(isinstance(e, Problem) and e.kind == "report_error" for e in evs)
    assert core.ended


def test_a_socket_that_never_starts_is_ended_with_a_report() -> None:
    core = CallCore(CallConfig(start_timeout_s=2.0), now=10.0)
    assert core.get_timer() == 12.0
    core.handle_timer(11.9)
    assert not core.ended
    core.handle_timer(12.0)
    report = _report(core)
    assert (report["end_reason"], report["counters"]["no_start"]) == ("no_start", 1)


def test_a_flood_is_rate_limited_and_counted() -> None:
    core = started_core(CallConfig(max_messages_per_s=100.0, max_message_burst=50))
    core.data_to_send()
    for k in range(1, 1001):  # 1000 messages in 10 ms
        core.receive_twilio(media(k), 0.02 + k * 1e-5)
    sent = core.data_to_send()
    assert 48 <= len(sent) <= 52  # the burst (less start), plus the refill in 10 ms
    core.receive_twilio(STOP, 1.0)  # refilled by then
    evs = events(core)
    [report] = [e.report.to_json() for e in evs if isinstance(e, CallEnded)]
    assert report["counters"]["rate_limited"] == 1000 - len(sent)
    assert sum(isinstance(e, Problem) and e.kind == "rate_limited" for e in evs) == 1  # one warning, not 950


def test_caller_audio_during_ai_connect_is_held_and_sent_in_order() -> None:
    core = CallCore(CallConfig(hold_audio_s=0.1), now=0.0)  # holds 5 frames
    core.receive_twilio(start(), 0.0)
    for k in range(1, 8):
        core.receive_twilio(media(k, payload=FRAME), k * 0.02)
    assert core.data_to_send() == []
    core.realtime_connected(0.3)
    out = [json.loads(o.text) for o in core.data_to_send()]
    assert out[0]["type"] == "session.update"
    assert [o["type"] for o in out[1:]] == ["input_audio_buffer.append"] * 5
    assert (core.counters["frames_held_for_ai"], core.counters["frames_while_ai_down"]) == (5, 2)


def test_a_wrong_media_format_is_counted() -> None:
    core = CallCore(CallConfig(), now=0.0)
    msg = json.loads(start())
    msg["start"]["mediaFormat"]["encoding"] = "audio/x-alaw"
    core.receive_twilio(json.dumps(msg), 0.0)
    core.receive_twilio(STOP, 0.1)
    assert _report(core)["counters"]["media_format"] == 1


def test_phi_values_of_the_wrong_type_never_reach_an_error_message() -> None:
    for value in (998877, ["P-998877"], {"id": "P-998877"}, "x" * 3):
        core = CallCore(CallConfig(), now=0.0)
        msg = json.loads(start())
        msg["start"]["customParameters"] = {"tenant": "t", "patient_id": value}
        core.receive_twilio(json.dumps(msg), 0.0)
        texts = [e.detail for e in events(core) if isinstance(e, Problem)]
        if isinstance(value, str):
            assert texts == []
            continue
        assert texts and not any("998877" in t for t in texts), texts


# ------------------------------------------------------------------------------------------ fuzz

HOSTILE: list[Any] = [
    None, True, -1, 0, 2**63, -(2**70), 1e308, -1e-300, float("inf"), "", "0", "-1", "1" * 20, "9" * 15, "9" * 400,
    "１２３", "\u0000", "\r\nINFO forged", "é" * 300, "x" * 70_000, [], {}, [1, [2, [3]]], {"a": {"b": {}}},
    "ps_" + "0" * 24, "audio/x-mulaw", "inbound", "outbound", "response.created", "resp_1", "AAAA", "@@@",
]


def _mutate(obj: Any, rng: random.Random) -> Any:
    """A copy of ``obj`` with one field somewhere replaced by a hostile value (or removed)."""
    obj = json.loads(json.dumps(obj))
    holders = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                holders.append((node, k))
                walk(v)

    walk(obj)
    if not holders:
        return obj
    node, key = rng.choice(holders)
    if rng.random() < 0.1:
        del node[key]
    else:
        node[key] = rng.choice(HOSTILE)
    return obj


def _twilio_shapes(k: int) -> list[dict[str, Any]]:
    return [json.loads(media(k)), json.loads(start()), json.loads(STOP),
            {"event": "mark", "sequenceNumber": str(k), "streamSid": SID, "mark": {"name": "m1"}},
            {"event": "dtmf", "sequenceNumber": str(k), "streamSid": SID, "dtmf": {"track": "inbound_track",
                                                                                   "digit": "5"}}]


AI_SHAPES: list[dict[str, Any]] = [
    {"type": "response.created", "event_id": "e", "response": {"id": "r1", "status": "in_progress"}},
    {"type": "response.output_audio.delta", "event_id": "e", "response_id": "r1", "item_id": "i1",
     "output_index": 0, "content_index": 0, "delta": FRAME},
    {"type": "response.output_audio.done", "event_id": "e", "response_id": "r1", "item_id": "i1",
     "output_index": 0, "content_index": 0},
    {"type": "response.done", "event_id": "e", "response": {"id": "r1", "status": "completed"}},
    {"type": "input_audio_buffer.speech_started", "event_id": "e", "audio_start_ms": 10, "item_id": "u1"},
    {"type": "input_audio_buffer.speech_stopped", "event_id": "e", "audio_end_ms": 900, "item_id": "u1"},
    {"type": "session.updated", "event_id": "e", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}},
    {"type": "error", "event_id": "e", "error": {"type": "server_error", "code": "x", "message": "m"}},
    {"type": "response.output_audio_transcript.done", "event_id": "e", "response_id": "r1", "item_id": "i1",
     "output_index": 0, "content_index": 0, "transcript": "hello"},
]


@pytest.mark.parametrize("seed", range(6))
def test_hostile_messages_never_escape_the_core_and_every_call_is_reported(seed: int) -> None:
    rng = random.Random(seed)
    cases = 0
    for call in range(25):
        core = started_core()
        now = 0.02
        for k in range(1, 41):
            now += rng.choice((0.0, 0.001, 0.02, 0.5))
            if rng.random() < 0.5:
                core.receive_twilio(json.dumps(_mutate(rng.choice(_twilio_shapes(k)), rng)), now)
            else:
                core.receive_realtime(json.dumps(_mutate(rng.choice(AI_SHAPES), rng)), now)
            if rng.random() < 0.05:
                core.realtime_closed(now, "fuzz")
                core.realtime_connected(now + 0.01)
            if rng.random() < 0.1:
                core.handle_timer(now)
            core.record_sent(core.data_to_send(), now + 0.001)
            cases += 1
        core.twilio_closed(now + 1.0)
        reports = [e.report.to_json() for e in events(core) if isinstance(e, CallEnded)]
        assert len(reports) == 1, (seed, call)
        json.dumps(reports[0])  # a report is always JSON
        assert reports[0]["counters"].get("report_errors", 0) == 0, reports[0].get("error")
    assert cases == 25 * 40
