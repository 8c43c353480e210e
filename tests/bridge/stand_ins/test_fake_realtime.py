"""The Realtime stand-in: sans-I/O protocol tests with literal JSON, and a loopback test with a real
websockets client. Every server event is validated (strict, no unknown keys) against the openai
package's RealtimeServerEvent union and every client event sent against RealtimeClientEvent."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
from typing import Any

import pytest
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from openai.types.realtime.realtime_session_create_response import RealtimeSessionCreateResponse
from pydantic import BaseModel, TypeAdapter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.stand_ins.realtime_ws import (
    FORMAT_PCMU,
    FakeRealtimeConfig,
    FakeRealtimeServer,
    FakeRealtimeSession,
    _plain_append_audio,
    decode_audio,
    encode_audio,
    speech_like,
)

Json = dict[str, Any]
SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)
# The union types session.created/updated's session as RealtimeSessionCreateRequest, which lacks the
# response-only keys; the session is validated separately against RealtimeSessionCreateResponse.
SESSION_RESPONSE_ONLY = {"id", "object", "expires_at"}

SPEECH_20MS = [encode_audio(speech_like(1000, 8000)[i:i + 160], FORMAT_PCMU) for i in range(0, 8000, 160)]
SILENCE_20MS = b"\xff" * 160


def assert_no_extras(model: object, path: str = "", allowed: frozenset[str] = frozenset()) -> None:
    if isinstance(model, BaseModel):
        extra = set(model.model_extra or {}) - (allowed if path == ".session" else set())
        assert not extra, f"unknown keys at {path or '<event>'}: {sorted(extra)}"
        for name in type(model).model_fields:
            assert_no_extras(getattr(model, name), f"{path}.{name}", allowed)
    elif isinstance(model, list):
        for i, v in enumerate(model):
            assert_no_extras(v, f"{path}[{i}]", allowed)


def check_server(text: str) -> Json:
    obj: Json = json.loads(text)
    model = SERVER_EVENT.validate_python(obj, strict=True)
    assert model.type == obj["type"]
    assert_no_extras(model, allowed=frozenset(SESSION_RESPONSE_ONLY))
    if obj["type"] in ("session.created", "session.updated"):
        assert_no_extras(RealtimeSessionCreateResponse.model_validate(obj["session"], strict=True))
    return obj


def client(obj: Json) -> str:
    model = CLIENT_EVENT.validate_python(obj, strict=True)
    assert model.type == obj["type"]
    assert_no_extras(model)
    return json.dumps(obj)


def append(audio: bytes) -> str:
    return client({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})


PCMU_UPDATE = {"type": "session.update", "event_id": "evt_upd",
               "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}},
                                                        "output": {"format": {"type": "audio/pcmu"}}}}}


class Driver:
    """Feeds a session like the asyncio driver does, with explicit time."""

    def __init__(self, config: FakeRealtimeConfig | None = None, seed: int = 7) -> None:
        self.now = 100.0
        self.s = FakeRealtimeSession(config or FakeRealtimeConfig(), self.now, random.Random(seed))
        self.log: list[tuple[float, Json]] = []

    def drain(self) -> list[Json]:
        out = [check_server(t) for t in self.s.events_to_send()]
        self.log += [(self.now, e) for e in out]
        return out

    def send(self, text: str) -> list[Json]:
        self.s.receive(text, self.now)
        return self.drain()

    def stream(self, frames: list[bytes]) -> list[Json]:
        out: list[Json] = []
        for f in frames:
            out += self.send(append(f))
            target = self.now + 0.020
            out += self.run_timers(until=target)
            self.now = target
        return out

    def run_timers(self, until: float = math.inf) -> list[Json]:
        out: list[Json] = []
        while (t := self.s.get_timer()) is not None and t <= until:
            self.now = max(self.now, t)
            self.s.handle_timer(self.now)
            out += self.drain()
        return out


def types(events: list[Json]) -> list[str]:
    return [e["type"] for e in events]


def deltas(events: list[Json]) -> list[bytes]:
    return [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"]


# -- session ------------------------------------------------------------------------------------


def test_session_created_is_a_full_ga_session() -> None:
    d = Driver()
    [created] = d.drain()
    s = created["session"]
    assert created["type"] == "session.created"
    assert (s["type"], s["object"], s["model"], s["output_modalities"]) == (
        "realtime", "realtime.session", "gpt-realtime", ["audio"])
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
        "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}


def test_session_update_deep_merges_and_echoes_full_session() -> None:
    d = Driver()
    before = d.drain()[0]["session"]
    [updated] = d.send(client(PCMU_UPDATE))
    assert updated["type"] == "session.updated"
    s = updated["session"]
    assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert s["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert s["audio"]["input"]["turn_detection"] == before["audio"]["input"]["turn_detection"]
    assert s["audio"]["output"]["voice"] == "alloy"
    assert s["instructions"] == before["instructions"]
    [again] = d.send(client({"type": "session.update", "session": {
        "type": "realtime", "instructions": "Be brief.",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}}))
    assert again["session"]["instructions"] == "Be brief."
    assert again["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert again["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 300
    assert again["session"]["audio"]["input"]["turn_detection"]["prefix_padding_ms"] == 300


@pytest.mark.parametrize("fmt", [{"type": "audio/opus"}, {"type": "audio/pcm", "rate": 16000},
                                 {"type": "audio/pcmu", "rate": 8000}, "g711_ulaw"])
def test_session_update_rejects_unsupported_formats(fmt: object) -> None:
    d = Driver()
    d.drain()
    # Not validated as a client event: the models themselves reject these formats.
    [err] = d.send(json.dumps({"type": "session.update", "event_id": "evt_bad",
                               "session": {"type": "realtime", "audio": {"input": {"format": fmt}}}}))
    assert err["type"] == "error"
    assert err["error"]["type"] == "invalid_request_error"
    assert err["error"]["event_id"] == "evt_bad"
    assert err["error"]["param"] == "session.audio.input.format"
    assert d.s.session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_mangle_formats_echoes_a_different_format() -> None:
    d = Driver(FakeRealtimeConfig(mangle_formats=True))
    d.drain()
    [updated] = d.send(client(PCMU_UPDATE))
    assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}
    assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcma"}


def test_malformed_and_unknown_events_get_errors_and_session_survives() -> None:
    d = Driver()
    d.drain()
    [e1] = d.send("{not json")
    [e2] = d.send('{"type": "conversation.frobnicate", "event_id": "evt_x"}')
    [e3] = d.send('["session.update"]')
    assert [e["type"] for e in (e1, e2, e3)] == ["error"] * 3
    assert e1["error"]["code"] == "invalid_json"
    assert e2["error"]["event_id"] == "evt_x"
    assert types(d.send(client(PCMU_UPDATE))) == ["session.updated"]


# -- VAD and responses --------------------------------------------------------------------------


def speak_then_wait(d: Driver) -> list[Json]:
    """500 ms silence, 1 s speech, 1 s silence in 20 ms appends, then let the response finish."""
    return d.stream([SILENCE_20MS] * 25 + SPEECH_20MS + [SILENCE_20MS] * 50) + d.run_timers()


def test_vad_turn_and_paced_response_in_odd_chunks() -> None:
    d = Driver(FakeRealtimeConfig(speed=4.0, response_ms=2000))
    d.drain()
    d.send(client(PCMU_UPDATE))
    events = speak_then_wait(d)
    names = types(events)
    started = events[names.index("input_audio_buffer.speech_started")]
    stopped = events[names.index("input_audio_buffer.speech_stopped")]
    # onset at 500 ms minus 300 ms prefix padding; end = speech end 1500 ms + 500 ms silence
    assert started["audio_start_ms"] == 200
    assert stopped["audio_end_ms"] == 2000
    assert started["item_id"] == stopped["item_id"]
    i = names.index("input_audio_buffer.speech_stopped")
    assert names[i:i + 10] == [
        "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "conversation.item.added",
        "conversation.item.done", "response.created", "response.output_item.added", "conversation.item.added",
        "response.content_part.added", "response.output_audio_transcript.delta", "response.output_audio.delta"]
    assert names[-6:] == [
        "response.output_audio.done", "response.output_audio_transcript.done", "response.content_part.done",
        "response.output_item.done", "conversation.item.done", "response.done"]
    committed = events[names.index("input_audio_buffer.committed")]
    assert committed["item_id"] == started["item_id"] and committed["previous_item_id"] is None
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["usage"]["output_tokens"] > 0
    chunks = deltas(events)
    assert sum(len(c) for c in chunks) == 2000 * 8  # pcmu: one byte per 8 kHz sample
    assert all(400 <= len(c) <= 3201 for c in chunks[:-1])
    assert all(len(c) % 160 for c in chunks[:-1]), [len(c) for c in chunks]
    assert len({len(c) for c in chunks}) > 2
    assert decode_audio(b"".join(chunks), FORMAT_PCMU).size == 16000
    # paced 4x: response.done exactly 2 s / 4 after response.created; deltas spread in between
    t_created = next(t for t, e in d.log if e["type"] == "response.created")
    t_done = next(t for t, e in d.log if e["type"] == "response.done")
    assert t_done - t_created == pytest.approx(0.5)
    t_deltas = [t for t, e in d.log if e["type"] == "response.output_audio.delta"]
    assert t_deltas[0] == t_created and t_deltas[-1] < t_done
    assert [x["id"] for x in d.s.items] == [started["item_id"], events[-1]["response"]["output"][0]["id"]]


def test_pcm_output_is_24khz_whole_samples() -> None:
    d = Driver(FakeRealtimeConfig(speed=math.inf, response_ms=1000))
    d.drain()
    events = d.send(client({"type": "response.create"})) + d.run_timers()
    chunks = deltas(events)
    assert sum(len(c) for c in chunks) == 2 * 24000
    assert all(len(c) % 2 == 0 and (len(c) // 2) % 480 for c in chunks[:-1])
    assert events[-1]["type"] == "response.done"


def test_barge_in_cancels_response_then_truncate() -> None:
    d = Driver(FakeRealtimeConfig(speed=1.0, response_ms=2000))
    d.drain()
    d.send(client(PCMU_UPDATE))
    first = d.stream([SILENCE_20MS] * 5 + SPEECH_20MS[:25] + [SILENCE_20MS] * 25 + [SILENCE_20MS] * 10)
    assert "response.created" in types(first) and "response.done" not in types(first)
    sent_before = sum(len(c) for c in deltas(first))
    barge = d.stream(SPEECH_20MS[:10])
    names = types(barge)
    assert names.index("input_audio_buffer.speech_started") < names.index("response.done")
    done = barge[names.index("response.done")]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    after = names[names.index("response.done") + 1:]
    assert "response.output_audio.delta" not in after
    assert "response.output_audio.delta" not in types(d.run_timers(until=d.now + 5))
    item_id = done["output"][0]["id"]
    sent_ms = (sent_before + sum(len(c) for c in deltas(barge))) // 8
    [truncated] = d.send(client({"type": "conversation.item.truncate", "event_id": "evt_tr", "item_id": item_id,
                                 "content_index": 0, "audio_end_ms": 120}))
    assert truncated == {"type": "conversation.item.truncated", "event_id": truncated["event_id"],
                         "item_id": item_id, "content_index": 0, "audio_end_ms": 120}
    assert d.s.truncations == [{"item_id": item_id, "content_index": 0, "audio_end_ms": 120}]
    [too_far] = d.send(client({"type": "conversation.item.truncate", "event_id": "evt_far", "item_id": item_id,
                               "content_index": 0, "audio_end_ms": sent_ms + 1}))
    [unknown] = d.send(client({"type": "conversation.item.truncate", "event_id": "evt_unk", "item_id": "nope",
                               "content_index": 0, "audio_end_ms": 0}))
    assert (too_far["type"], too_far["error"]["event_id"]) == ("error", "evt_far")
    assert (unknown["type"], unknown["error"]["event_id"]) == ("error", "evt_unk")
    assert len(d.s.truncations) == 1


def test_interrupt_response_false_lets_response_finish() -> None:
    d = Driver(FakeRealtimeConfig(speed=1.0, response_ms=1000))
    d.drain()
    d.send(client({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"},
                  "turn_detection": {"type": "server_vad", "interrupt_response": False}}}}}))
    d.send(client({"type": "response.create"}))
    events = d.stream(SPEECH_20MS[:10]) + d.run_timers(until=d.now + 2)
    assert "input_audio_buffer.speech_started" in types(events)
    assert [e["response"]["status"] for e in events if e["type"] == "response.done"] == ["completed"]


def test_response_cancel_and_create_conflicts() -> None:
    d = Driver(FakeRealtimeConfig(speed=1.0))
    d.drain()
    [err] = d.send(client({"type": "response.cancel", "event_id": "evt_c0"}))
    assert (err["error"]["code"], err["error"]["event_id"]) == ("response_cancel_not_active", "evt_c0")
    created = d.send(client({"type": "response.create", "event_id": "evt_r1"}))
    assert types(created)[0] == "response.created"
    [busy] = d.send(client({"type": "response.create", "event_id": "evt_r2"}))
    assert (busy["error"]["code"], busy["error"]["event_id"]) == ("conversation_already_has_active_response",
                                                                  "evt_r2")
    cancelled = d.send(client({"type": "response.cancel", "event_id": "evt_c1"}))
    assert cancelled[-1]["response"]["status"] == "cancelled"
    assert cancelled[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert d.s.get_timer() is None


def test_conversation_item_create_is_recorded() -> None:
    d = Driver()
    d.drain()
    added, done = d.send(client({"type": "conversation.item.create", "event_id": "evt_i", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi there"}]}}))
    assert (added["type"], done["type"]) == ("conversation.item.added", "conversation.item.done")
    assert added["item"]["content"] == [{"type": "input_text", "text": "Hi there"}]
    assert added["item"]["status"] == "completed" and added["previous_item_id"] is None
    assert d.s.items == [added["item"]]
    [err] = d.send(client({"type": "conversation.item.create", "event_id": "evt_j", "previous_item_id": "zz",
                           "item": {"type": "message", "role": "user", "content": []}}))
    assert (err["type"], err["error"]["event_id"]) == ("error", "evt_j")


def test_manual_turns_without_vad() -> None:
    d = Driver()
    d.drain()
    d.send(client({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}}}}))
    assert d.stream(SPEECH_20MS[:4]) == []
    [err] = d.send(client({"type": "input_audio_buffer.commit", "event_id": "evt_c"}))
    assert err["error"]["code"] == "input_audio_buffer_commit_empty"
    d.stream(SPEECH_20MS[4:10])
    assert types(d.send(client({"type": "input_audio_buffer.commit"}))) == [
        "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert types(d.send(client({"type": "input_audio_buffer.clear"}))) == ["input_audio_buffer.cleared"]


# -- test hooks ---------------------------------------------------------------------------------


def test_session_expiry_hook() -> None:
    d = Driver(FakeRealtimeConfig(session_expire_after_s=1.0))
    d.drain()
    assert d.s.get_timer() == pytest.approx(101.0)
    [err] = d.run_timers()
    assert err["error"]["code"] == "session_expired"
    assert d.s.closed and not d.s.abort and d.s.get_timer() is None


def test_close_after_events_hook() -> None:
    d = Driver(FakeRealtimeConfig(close_after_events=2))
    d.drain()
    d.send(client(PCMU_UPDATE))
    assert not d.s.closed
    d.send(append(SILENCE_20MS))
    assert d.s.closed and d.s.abort
    assert d.send(client(PCMU_UPDATE)) == []


def test_stall_after_deltas_hook() -> None:
    d = Driver(FakeRealtimeConfig(speed=math.inf, stall_after_deltas=3))
    d.drain()
    events = d.send(client({"type": "response.create"})) + d.run_timers()
    assert len(deltas(events)) == 3 and "response.done" not in types(events)
    assert d.s.get_timer() is None
    assert types(d.send(client({"type": "response.cancel"})))[-1] == "response.done"


# -- loopback -----------------------------------------------------------------------------------


async def recv_until(ws: ClientConnection, last: str, seen: list[Json], timeout: float = 3.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(timeout):
        while True:
            ev = check_server(str(await ws.recv()))
            out.append(ev)
            seen.append(ev)
            if ev["type"] == last:
                return out


async def test_loopback_turn_barge_in_truncate() -> None:
    config = FakeRealtimeConfig(speed=8.0, response_ms=2000, seed=3)
    seen: list[Json] = []
    async with FakeRealtimeServer(config) as server, connect(
            f"{server.url}?model=gpt-realtime", additional_headers={"Authorization": "Bearer sk-test"}) as ws:
        [created] = await recv_until(ws, "session.created", seen)
        assert created["session"]["model"] == "gpt-realtime"
        await ws.send(client(PCMU_UPDATE))
        [updated] = await recv_until(ws, "session.updated", seen)
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert updated["session"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}

        for frame in SPEECH_20MS + [SILENCE_20MS] * 50:
            await ws.send(append(frame))
        turn = await recv_until(ws, "response.done", seen)
        names = types(turn)
        assert names[:2] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]
        assert turn[0]["audio_start_ms"] == 0 and turn[1]["audio_end_ms"] == 1500
        assert turn[-1]["response"]["status"] == "completed"
        chunks = deltas(turn)
        assert decode_audio(b"".join(chunks), FORMAT_PCMU).size * 1000 // 8000 == 2000
        assert all(len(c) % 160 for c in chunks[:-1]) and len({len(c) for c in chunks}) > 2

        await ws.send(client({"type": "response.create"}))
        streaming = await recv_until(ws, "response.output_audio.delta", seen)
        item_id = streaming[-1]["item_id"]
        for frame in SPEECH_20MS[:10]:
            await ws.send(append(frame))
        barge = await recv_until(ws, "response.done", seen)
        assert "input_audio_buffer.speech_started" in types(barge)
        assert barge[-1]["response"]["status"] == "cancelled"
        assert barge[-1]["response"]["status_details"]["reason"] == "turn_detected"

        await ws.send(client({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                              "audio_end_ms": 40}))
        [truncated] = await recv_until(ws, "conversation.item.truncated", seen)
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 40)
        assert server.sessions[0].truncations == [{"item_id": item_id, "content_index": 0, "audio_end_ms": 40}]
    assert len(seen) > 20


async def test_loopback_auth_and_path() -> None:
    async with FakeRealtimeServer(FakeRealtimeConfig(api_key="sk-right")) as server:
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "Bearer "}):
            with pytest.raises(InvalidStatus) as info:
                async with connect(server.url, additional_headers=headers):
                    pass
            assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"ws://127.0.0.1:{server.port}/v1/other",
                               additional_headers={"Authorization": "Bearer sk-right"}):
                pass
        assert info.value.response.status_code == 404
        async with connect(server.url, additional_headers={"Authorization": "Bearer sk-right"}) as ws:
            assert check_server(str(await ws.recv()))["type"] == "session.created"


async def test_loopback_close_after_events_drops_connection() -> None:
    async with FakeRealtimeServer(FakeRealtimeConfig(close_after_events=1)) as server, connect(
            server.url, additional_headers={"Authorization": "Bearer k"}) as ws:
        await ws.recv()
        await ws.send(client(PCMU_UPDATE))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(2):
                while True:
                    check_server(str(await ws.recv()))


@pytest.mark.parametrize("text", [
    '{"type":"input_audio_buffer.append","audio":"AAEC/w=="}',  # as mosbridge writes it
    json.dumps({"type": "input_audio_buffer.append", "audio": "AAEC/w=="}),  # as json.dumps does
    '{"type":"input_audio_buffer.append","audio":"AAEC\\/w=="}',  # an escaped slash: still valid JSON
    '{"type":"input_audio_buffer.append","audio":"AA","event_id":"e1"}',
    '{"type":"input_audio_buffer.append","audio":"A\\"","x":"y"}',
    '{"type":"input_audio_buffer.append","audio":"AA"} ',
    '{"audio":"AA","type":"input_audio_buffer.append"}',
])
def test_the_append_shortcut_reads_only_what_json_reads_the_same(text: str) -> None:
    """The stand-in skips the JSON parse for appends written as bridges write them; whatever it
    reads that way must be what json.loads reads, and anything else takes the parse."""
    audio = _plain_append_audio(text)
    if audio is not None:
        assert json.loads(text) == {"type": "input_audio_buffer.append", "audio": audio}
    shortcut = text.startswith(('{"type":"input_audio_buffer.append","audio":"AAEC/',
                                '{"type": "input_audio_buffer.append", "audio": "AAEC/'))
    assert (audio is not None) == shortcut


async def test_loopback_session_ends_by_its_timer_while_the_client_is_silent() -> None:
    """The session's own deadline (expiry) ends it with no client event to wake the server."""
    async with FakeRealtimeServer(FakeRealtimeConfig(session_expire_after_s=0.3)) as server, connect(
            server.url, additional_headers={"Authorization": "Bearer k"}) as ws:
        seen = []
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(3):
                while True:
                    seen.append(check_server(str(await ws.recv())))
    assert [e["type"] for e in seen] == ["session.created", "error"]
    assert seen[1]["error"]["code"] == "session_expired"
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


def test_cli_parser_defaults_and_validation() -> None:
    import argparse

    from bridge.cli import fake_realtime as fake_realtime_cmd

    parser = argparse.ArgumentParser(prog="mosbridge")
    fake_realtime_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fake-realtime"])
    assert (args.host, args.port, args.speed, args.response_ms, args.api_key) == (
        "127.0.0.1", 8765, 4.0, 2000, None)
    assert args.run is fake_realtime_cmd.run
    args = parser.parse_args(["fake-realtime", "--port", "0", "--speed", "16", "--response-ms", "750",
                              "--api-key", "sk-x"])
    assert (args.port, args.speed, args.response_ms, args.api_key) == (0, 16.0, 750, "sk-x")
    with pytest.raises(SystemExit):
        parser.parse_args(["fake-realtime", "--speed", "0"])
