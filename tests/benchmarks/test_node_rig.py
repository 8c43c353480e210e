"""The Node load rig (benchmarks/node_rig): its Realtime stand-in against the GA event models and the
Python stand-in, and its callers' latencies against delays a peer here adds on purpose."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from benchmarks.node_rig import NodeRig, node_rig
from bridge.loadtest.run import LoadOptions, _free_ports
from bridge.stand_ins.audio_tags import AI_TAG_SPACING, find_ai_tags
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from tests.bridge.stand_ins.test_fake_realtime import PCMU_UPDATE, SILENCE_20MS, SPEECH_20MS, append, check_server

Json = dict[str, Any]
CONFIG = FakeRealtimeConfig(speed=8.0, response_ms=600, seed=3)
TO_AI_DELAY_S, TO_CALLER_DELAY_S = 0.040, 0.025
AUTH = {"Authorization": "Bearer sk-test"}


@contextlib.asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[NodeRig]:
    async with node_rig(tmp_path, os.sched_getaffinity(0), CONFIG) as r:
        yield r


async def _events_until(ws: ClientConnection, last: str, timeout: float = 5.0) -> list[Json]:
    out: list[Json] = []
    async with asyncio.timeout(timeout):
        while not out or out[-1]["type"] != last:
            out.append(check_server(str(await ws.recv())))
    return out


async def _a_turn(url: str) -> tuple[list[Json], list[Json]]:
    """session.update, a second of speech, 0.6 s of silence (an answer), then speech again during the
    answer (barge-in); every server event validated strictly. (events of the turn, of the barge-in)"""
    async with connect(url + "?model=gpt-realtime", additional_headers=AUTH) as ws:
        created = check_server(str(await ws.recv()))
        assert created["type"] == "session.created"
        await ws.send(json.dumps(PCMU_UPDATE))
        updated = (await _events_until(ws, "session.updated"))[-1]
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        for frame in SPEECH_20MS + [SILENCE_20MS] * 30:
            await ws.send(append(frame))
        turn = await _events_until(ws, "response.output_audio.delta")
        for frame in SPEECH_20MS[:5]:
            await ws.send(append(frame))
        barge = await _events_until(ws, "response.done")
        return turn, barge


async def test_its_stand_in_speaks_the_ga_events_the_python_stand_in_does(tmp_path: Path) -> None:
    async with rig(tmp_path) as node:
        node_turn, node_barge = await _a_turn(node.realtime_url)
    python = FakeRealtimeServer(CONFIG)
    await python.start("127.0.0.1", 0)
    try:
        py_turn, py_barge = await _a_turn(f"ws://127.0.0.1:{python.port}/v1/realtime")
    finally:
        await python.close()
    kinds = [[e["type"] for e in events if e["type"] != "response.output_audio.delta"] for events in
             (node_turn, node_barge, py_turn, py_barge)]
    assert kinds[0] == kinds[2] and kinds[1] == kinds[3]
    for node_events, py_events in ((node_turn, py_turn), (node_barge, py_barge)):
        for kind, key in (("input_audio_buffer.speech_started", "audio_start_ms"),
                          ("input_audio_buffer.speech_stopped", "audio_end_ms")):
            assert [e[key] for e in node_events if e["type"] == kind] == \
                [e[key] for e in py_events if e["type"] == kind]
    # a second of speech, then 500 ms of silence (silence_duration_ms) ends the turn; the barge-in
    # starts at the 80th window (1.6 s), less the 300 ms prefix
    assert next(e for e in node_turn if e["type"] == "input_audio_buffer.speech_stopped")["audio_end_ms"] == 1500
    assert next(e for e in node_barge if e["type"] == "input_audio_buffer.speech_started")["audio_start_ms"] == 1300
    done = node_barge[-1]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"


async def test_its_answers_carry_tags_that_the_python_reader_places_in_the_stream(tmp_path: Path) -> None:
    async with rig(tmp_path) as node, connect(node.realtime_url, additional_headers=AUTH) as ws:
        await ws.recv()
        await ws.send(json.dumps(PCMU_UPDATE))
        for frame in SPEECH_20MS[:20] + [SILENCE_20MS] * 26:
            await ws.send(append(frame))
        events = await _events_until(ws, "response.done")
        audio = b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")
        item_id = events[-1]["response"]["output"][0]["id"]
        await ws.send(json.dumps({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                                  "audio_end_ms": 100}))
        truncated = (await _events_until(ws, "conversation.item.truncated"))[-1]
    assert len(audio) == CONFIG.response_ms * 8
    tags = find_ai_tags(audio)
    assert [pos for pos, _ in tags] == list(range(0, len(audio) - AI_TAG_SPACING + 1, AI_TAG_SPACING))
    assert all(tag.offset == pos and tag.session == tags[0][1].session for pos, tag in tags)
    sizes = [len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta"]
    assert all(s % 160 for s in sizes[:-1])  # never whole 20 ms frames, as the Python stand-in's
    assert all(CONFIG.min_chunk_ms * 8 <= s <= CONFIG.max_chunk_ms * 8 + 1 for s in sizes[:-1])
    assert truncated["audio_end_ms"] == 100


@contextlib.asynccontextmanager
async def delaying_peer(realtime_url: str) -> AsyncIterator[tuple[str, list[float]]]:
    """A pass-through that holds caller audio TO_AI_DELAY_S and AI audio TO_CALLER_DELAY_S before
    passing it on, sending a mark after each media message; yields its /media URL and, per mark,
    the time from sending it to its echo less the audio queued before it (Twilio's playout)."""
    slack: list[float] = []

    async def media(request: web.Request) -> web.WebSocketResponse:
        twilio = web.WebSocketResponse()
        await twilio.prepare(request)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http, http.ws_connect(realtime_url, headers=AUTH) as ai:
            await ai.send_str(json.dumps(PCMU_UPDATE))
            sid = ""
            play_until = 0.0
            marks: dict[str, float] = {}

            async def later(delay: float, ws: Any, text: str) -> None:
                await asyncio.sleep(delay)
                if not ws.closed:
                    await ws.send_str(text)

            async def to_caller(delta: str) -> None:
                nonlocal play_until
                await asyncio.sleep(TO_CALLER_DELAY_S)
                now = loop.time()
                play_until = max(play_until, now) + len(base64.b64decode(delta)) / 8000
                name = f"m{len(marks)}"
                marks[name] = play_until
                await twilio.send_str(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": delta}}))
                await twilio.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": name}}))

            async def from_ai() -> None:
                async for msg in ai:
                    event = json.loads(msg.data)
                    if event["type"] == "response.output_audio.delta":
                        # each held for the delay from its own arrival
                        task = asyncio.create_task(to_caller(event["delta"]))
                        pending.add(task)
                        task.add_done_callback(pending.discard)

            pending: set[asyncio.Task[None]] = set()
            back = asyncio.create_task(from_ai())
            async for msg in twilio:
                data = json.loads(msg.data)
                if data["event"] == "start":
                    sid = data["start"]["streamSid"]
                elif data["event"] == "media":
                    text = json.dumps({"type": "input_audio_buffer.append", "audio": data["media"]["payload"]})
                    task = asyncio.create_task(later(TO_AI_DELAY_S, ai, text))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif data["event"] == "mark":
                    slack.append(loop.time() - marks[data["mark"]["name"]])
                elif data["event"] == "stop":
                    break
            await asyncio.gather(*pending)  # the last frames reach the AI before it is closed
            back.cancel()
        await twilio.close()
        return twilio

    async with serving_media(media) as url:
        yield url, slack


@contextlib.asynccontextmanager
async def serving_media(handler: Any) -> AsyncIterator[str]:
    """``handler`` answering ``/media`` on a free loopback port; yields its ws:// URL."""
    app = web.Application()
    app.router.add_get("/media", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"ws://127.0.0.1:{port}/media"
    finally:
        await runner.cleanup()


async def test_its_callers_measure_the_delays_a_peer_adds_and_echo_marks_when_played(tmp_path: Path) -> None:
    async with rig(tmp_path) as node, delaying_peer(node.realtime_url) as (url, slack):
        result, t0 = await node.run(LoadOptions(calls=3, ramp_s=0.5, duration_s=7.0, seed=2, target=url))
    view = result.caller_view
    counts = view["counts"]
    assert result.calls == {"started": 3, "completed": 3, "failed": 0}
    assert counts["calls_with_sessions"] == 3
    assert counts["frames_matched"] == counts["frames_sent"] == result.frames["caller_sent"] > 3 * 250
    assert counts["tags_matched"] > 0
    # the peer's sleeps are the truth; loopback and two event loops add a little
    assert TO_AI_DELAY_S * 1000 <= view["to_ai_ms"]["p50"] <= TO_AI_DELAY_S * 1000 + 8
    assert TO_CALLER_DELAY_S * 1000 <= view["to_caller_ms"]["p50"] <= TO_CALLER_DELAY_S * 1000 + 8
    assert slack and all(-0.002 <= s <= 0.015 for s in slack)  # echoed once the audio before it played
    assert t0 > 0


async def test_its_stand_in_refuses_a_session_without_a_key(tmp_path: Path) -> None:
    async with rig(tmp_path) as node:
        for headers in ({}, {"Authorization": "Bearer "}):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(node.realtime_url, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401


async def test_its_callers_count_a_503_upgrade_as_refused_and_another_status_as_failed(tmp_path: Path) -> None:
    statuses = iter([503, 503, 500])

    async def media(request: web.Request) -> web.Response:
        return web.Response(status=next(statuses), text="full\n")

    async with serving_media(media) as url, rig(tmp_path) as node:
        result, _ = await node.run(LoadOptions(calls=3, ramp_s=0.3, duration_s=2.0, seed=1, target=url))
    assert result.refused == 2
    assert result.calls == {"started": 3, "completed": 0, "failed": 1}
    assert result.frames["caller_sent"] == 0
