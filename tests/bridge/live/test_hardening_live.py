"""Hardening of the live bridge over real loopback sockets: every report written, no session
leaked, no PHI anywhere, one caller cannot hurt another, and no resource held without bound."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.ops.store import open_store
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from bridge.stand_ins.twilio_caller import SimulatedCaller, media_message, start_message
from tests.bridge.live_rig import Live, live_bridge, schedule, silence_frames, speech_frames
from tests.reports import loose

SILENCE_B64 = base64.b64encode(b"\xff" * 160).decode()
STOP = json.dumps({"event": "stop", "sequenceNumber": "9", "streamSid": "MZh",
                   "stop": {"accountSid": "AC" + "0" * 32, "callSid": "CA-h"}})


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def stored(live: Live, call_sid: str) -> dict[str, Any] | None:
    report = open_store(live.settings.database_url).get(call_sid)
    return None if report is None else loose(report)


async def report_of(live: Live, call_sid: str) -> dict[str, Any]:
    assert await until(lambda: stored(live, call_sid) is not None), f"no report for {call_sid}"
    report = stored(live, call_sid)
    assert report is not None
    return report


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_call_with_absurd_numbers_gets_its_report_and_leaks_no_ai_session(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live:
        async with http.ws_connect(live.media_url) as ws:
            await ws.send_str(start_message("MZh", "CA-h", {"tenant": "t"}))
            await ws.send_str(media_message("MZh", 2, 1, 0, SILENCE_B64))
            huge_chunk = media_message("MZh", 3, 2, 20, SILENCE_B64).replace('"chunk":"2"', f'"chunk":"{"9" * 400}"')
            await ws.send_str(huge_chunk)
            await ws.send_str(media_message("MZh", 4, 3, "1" + "0" * 160, SILENCE_B64))  # type: ignore[arg-type]
            await ws.send_str(media_message("MZh", "7" * 5000, 4, 60, SILENCE_B64))  # type: ignore[arg-type]
            assert await until(lambda: live.fake.open_connections == 1)
            await ws.send_str(STOP)
            await ws.receive(timeout=5)  # the bridge closes the socket after stop
        report = await report_of(live, "CA-h")
        assert report["counters"]["bad_message"] == 3 and report["end_reason"] == "stop"
        assert await until(lambda: live.fake.open_connections == 0)  # the Realtime session is closed too
        async with http.get(live.base + "/healthz") as r:
            assert (await r.json())["calls"] == 0


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--x--\r\n"),
    ("application/x-www-form-urlencoded", b"CallSid=CA\xff\xfe"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"CallSid=CA1"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\n1"),
])
async def test_twiml_answers_unreadable_bodies_with_400_not_500(tmp_path: Path, http: aiohttp.ClientSession,
                                                                content_type: str, body: bytes) -> None:
    async with live_bridge(tmp_path) as live, \
            http.post(live.base + "/twiml", data=body, headers={"Content-Type": content_type}) as r:
        assert r.status in (400, 403), await r.text()


async def test_a_malformed_http_request_is_one_warning_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with live_bridge(tmp_path) as live:
        with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
            reader, writer = await asyncio.open_connection("127.0.0.1", live.bridge.bound_port)
            writer.write(b"POST /twiml HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(200), 5)
            writer.close()
            assert b" 400 Bad Request" in answer.split(b"\r\n", 1)[0]
            assert await until(lambda: any(r.name == "aiohttp.server" for r in caplog.records))
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is None and "malformed HTTP request" in records[0].getMessage()


async def test_api_answers_503_with_retry_after_while_the_store_is_down(tmp_path: Path,
                                                                        http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none",
                           spool_path=str(tmp_path / "spool.jsonl"), alerts=False) as live, \
            http.get(live.base + "/api/v1/calls") as r:
        assert r.status == 503
        assert r.headers["Retry-After"] == "5"
        assert "report store unavailable" in (await r.json())["error"]


async def test_phi_never_reaches_a_capture_or_a_log(tmp_path: Path, http: aiohttp.ClientSession,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_tenants="*", capture_dir=str(captures),
                           max_message_bytes=4096) as live:
        # a start over half the size cap (so once kept raw) with a patient id, then one whose id is a number
        big = start_message("MZp1", "CA-p1", {"tenant": "t", "patient_id": "P-998877", "notes": "n" * 3000})
        assert 2048 < len(big) <= 4096
        wrong_type = json.loads(start_message("MZp2", "CA-p2", {"tenant": "t"}))
        wrong_type["start"]["customParameters"]["patient_id"] = 998877
        for sid, first in (("CA-p1", big), ("CA-p2", json.dumps(wrong_type))):
            async with http.ws_connect(live.media_url) as ws:
                await ws.send_str(first)
                await ws.send_str(media_message("MZp", 2, 1, 0, SILENCE_B64))
                await ws.send_str(STOP.replace("CA-h", sid))
                await ws.receive(timeout=5)
        await report_of(live, "CA-p1")
    texts = [p.read_text() for p in captures.rglob("*.jsonl")]
    assert texts and all("998877" not in t for t in texts)
    assert "ps_" in "".join(texts)
    assert not any("998877" in r.getMessage() for r in caplog.records)
    assert any("withheld" in r.getMessage() for r in caplog.records)  # the refused start is still logged


async def test_a_socket_that_never_starts_is_closed_and_opens_no_ai_session(tmp_path: Path,
                                                                            http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, start_timeout_s=0.4) as live:
        async with http.ws_connect(live.media_url) as ws:
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            t0 = time.monotonic()
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert 0.3 < time.monotonic() - t0 < 2.0
        assert live.fake.sessions == []
        assert await until(lambda: len(open_store(live.settings.database_url).list()) == 1)
        [row] = open_store(live.settings.database_url).list()
        assert row["end_reason"] == "no_start"


async def test_a_twilio_peer_that_stops_answering_pings_is_ended(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, ping_interval_s=0.1,
                           twilio_missed_pongs=2) as live:
        async with http.ws_connect(live.media_url, autoping=False) as ws:  # never answers a ping
            await ws.send_str(start_message("MZu", "CA-u", {"tenant": "t"}))
            t0 = time.monotonic()
            while (await ws.receive(timeout=5)).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
            assert time.monotonic() - t0 < 2.0
        report = await report_of(live, "CA-u")
        assert report["end_reason"].startswith("twilio_unresponsive")
        assert report["counters"]["twilio_unresponsive"] == 1
        assert await until(lambda: live.fake.open_connections == 0)


@contextlib.asynccontextmanager
async def _tarpit(accepted: list[float], *, close: bool) -> AsyncIterator[asyncio.Server]:
    """A TCP server that accepts and never answers (or closes at once): a hung or restarting AI.
    Its held connections are closed on the way out (since Python 3.12 ``wait_closed`` waits for them)."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(time.monotonic())
        if close:
            writer.close()
        else:
            held.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_ai_that_never_answers_the_handshake_times_out_and_reconnects_with_backoff(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    accepted: list[float] = []
    async with _tarpit(accepted, close=False) as server, live_bridge(
            tmp_path, validate_twilio_signature=False,
            openai_url=f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/realtime", ai_connect_timeout_s=0.3,
            ai_reconnect_backoff_s=0.2, max_ai_reconnects=2) as live:
        accepted.clear()  # the bridge's start-up reachability check
        caller = SimulatedCaller(live.media_url, stream_sid="MZa", call_sid="CA-a", params={"tenant": "t"})
        await caller.run(schedule(silence_frames(2.0)), hangup_after_s=2.5, session=http)
        report = await report_of(live, "CA-a")
    assert report["end_reason"].startswith("ai_failed: connect timed out")
    assert report["counters"]["ai_connect_timeouts"] == 3
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    # each wait is the 0.3 s timeout plus a backoff of at least half of 0.2 s, then 0.4 s
    assert len(gaps) == 2 and gaps[0] >= 0.3 + 0.1 - 0.02 and gaps[1] >= 0.3 + 0.2 - 0.02


async def test_a_call_rides_out_an_ai_restart_and_the_caller_loses_no_audio(tmp_path: Path,
                                                                            http: aiohttp.ClientSession) -> None:
    accepted: list[float] = []
    down_cm = _tarpit(accepted, close=True)  # the AI's port refuses sessions while it restarts
    down = await down_cm.__aenter__()
    port = down.sockets[0].getsockname()[1]
    fake = FakeRealtimeServer(FakeRealtimeConfig(speed=8.0))
    async with live_bridge(tmp_path, validate_twilio_signature=False, openai_url=f"ws://127.0.0.1:{port}/v1/realtime",
                           ai_reconnect_backoff_s=0.1, max_ai_reconnects=6) as live:
        accepted.clear()  # the bridge's start-up reachability check
        frames = speech_frames(1.0) + silence_frames(2.0)
        caller = SimulatedCaller(live.media_url, stream_sid="MZr", call_sid="CA-r", params={"tenant": "t"})

        async def restart() -> None:
            await asyncio.sleep(0.8)
            await down_cm.__aexit__(None, None, None)
            await fake.start(port=port)

        await asyncio.gather(caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.3, session=http),
                             restart())
        report = await report_of(live, "CA-r")
    await fake.close()
    # aiohttp retries a reset connection once: accepts within 20 ms are one attempt
    attempts = [t for i, t in enumerate(accepted) if i == 0 or t - accepted[i - 1] > 0.02]
    assert len(attempts) >= 2 and all(b - a >= 0.045 for a, b in itertools.pairwise(attempts))
    assert report["end_reason"] == "stop"
    counters = report["counters"]
    assert counters["frames_held_for_ai"] >= 0.7 / 0.02 and counters.get("frames_while_ai_down", 0) == 0
    [session] = fake.sessions
    appends = [e for e in map(json.loads, session.received) if e["type"] == "input_audio_buffer.append"]
    assert len(appends) == len(frames)  # every frame the caller spoke reached the AI, in order after the restart


async def test_one_callers_flood_does_not_hurt_another_call(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live:
        good = SimulatedCaller(live.media_url, stream_sid="MZg", call_sid="CA-good", params={"tenant": "t"})

        async def flood() -> None:
            await asyncio.sleep(1.0)
            async with http.ws_connect(live.media_url) as ws:
                await ws.send_str(start_message("MZf", "CA-flood", {"tenant": "t"}))
                for k in range(1, 5001):  # 100 s of audio sent at once
                    await ws.send_str(media_message("MZf", k + 1, k, (k - 1) * 20, SILENCE_B64))
                await ws.send_str(STOP.replace("CA-h", "CA-flood"))
                await ws.receive(timeout=10)

        await asyncio.gather(good.run(schedule(silence_frames(3.0)), hangup_after_s=3.2, session=http), flood())
        good_report, flood_report = await report_of(live, "CA-good"), await report_of(live, "CA-flood")
    assert flood_report["counters"]["rate_limited"] > 4000
    assert good_report["mos"] >= 4.2, good_report["inbound"]
    assert good_report["inbound"]["late_pct"] <= 2.0


async def test_a_message_over_the_transport_cap_ends_the_call_counted_and_logged(
        tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live:
        async with http.ws_connect(live.media_url) as ws:
            await ws.send_str(start_message("MZb", "CA-big", {"tenant": "t"}))
            with contextlib.suppress(ConnectionError):  # the bridge closes the socket part-way through
                await ws.send_str("x" * 10_000_000)
                await ws.receive(timeout=10)
        report = await report_of(live, "CA-big")
    assert report["end_reason"].startswith("twilio_error") and report["counters"]["twilio_error"] == 1
    assert any(r.levelno == logging.ERROR and "twilio_error" in r.getMessage() for r in caplog.records)


async def test_metrics_and_stats_need_the_metrics_token_when_one_is_set(tmp_path: Path,
                                                                        http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, metrics_token="m-secret") as live:
        for path in ("/metrics", "/stats"):
            async with http.get(live.base + path) as r:
                assert r.status == 401
            async with http.get(live.base + path, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with http.get(live.base + path, headers={"Authorization": "Bearer m-secret"}) as r:
                assert r.status == 200


async def test_a_second_stream_on_one_call_sid_keeps_both_reports(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live:
        for stream in ("MZone", "MZtwo"):
            caller = SimulatedCaller(live.media_url, stream_sid=stream, call_sid="CA-dup", params={"tenant": "t"})
            await caller.run(schedule(silence_frames(0.4)), hangup_after_s=0.5, session=http)
            await report_of(live, "CA-dup")
        second = await report_of(live, "CA-dup/MZtwo")
        first = stored(live, "CA-dup")
    assert first is not None and first["stream_sid"] == "MZone"
    assert second["stream_sid"] == "MZtwo" and second["call_sid"] == "CA-dup"
