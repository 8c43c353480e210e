"""The live server's edges: Twilio signatures (with the twilio package), TwiML, health, drain,
and peers that vanish."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import socket
from pathlib import Path

import aiohttp
import pytest

from bridge.live.ai_legs import RealtimeWsLeg
from bridge.ops.store import open_store
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig
from bridge.stand_ins.twilio_caller import SimulatedCaller, start_message
from tests.bridge.live_rig import live_bridge, schedule, silence_frames, speech_frames


async def test_media_upgrade_requires_a_valid_signature(tmp_path: Path) -> None:
    async with live_bridge(tmp_path) as live, aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await http.ws_connect(live.media_url, headers=headers)
            assert exc.value.status == 403
        # Signed for the URL Twilio used (wss here is ws: the test has no TLS).
        async with http.ws_connect(live.media_url, headers=live.signed_headers(live.media_url)) as ws:
            await ws.send_str(start_message("MZ9", "CA-signed", {"tenant": "t"}))
            await ws.close()
        await asyncio.sleep(0.2)
    assert open_store(live.settings.database_url).get("CA-signed") is not None


async def test_signature_uses_the_public_url_behind_a_proxy(tmp_path: Path) -> None:
    public = "https://voice.example.com"
    async with live_bridge(tmp_path, public_url=public) as live, aiohttp.ClientSession() as http:
        good = live.signed_headers("wss://voice.example.com/media")
        async with http.ws_connect(live.media_url, headers=good) as ws:
            await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(live.media_url, headers=live.signed_headers(live.media_url))
        assert exc.value.status == 403


async def test_twiml_webhook_returns_connect_stream_with_parameters(tmp_path: Path) -> None:
    public = "https://voice.example.com"
    form = {"CallSid": "CA77", "From": "+15550001111", "To": "+15550002222"}
    async with live_bridge(tmp_path, public_url=public) as live, aiohttp.ClientSession() as http:
        path = "/twiml?tenant=acme&vertical=sales&lead_id=L-1"
        headers = live.signed_headers(public + path, form)
        async with http.post(live.base + path, data=form, headers=headers) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/xml"
            body = await resp.text()
        async with http.post(live.base + path, data=form) as resp:
            assert resp.status == 403
        tampered = dict(form, To="+15559999999")
        async with http.post(live.base + path, data=tampered, headers=headers) as resp:
            assert resp.status == 403
    assert '<Connect><Stream url="wss://voice.example.com/media">' in body
    assert '<Parameter name="tenant" value="acme" />' in body
    assert '<Parameter name="lead_id" value="L-1" />' in body
    assert "?" not in body.split('url="')[1].split('"')[0]  # the Stream URL takes no query string


async def test_health_ready_and_sigterm_drain_writes_reports(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, drain_timeout_s=0.5) as live, \
            aiohttp.ClientSession() as http:
        async with http.get(live.base + "/healthz") as r:
            assert r.status == 200
        async with http.get(live.base + "/readyz") as r:
            assert r.status == 200
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZ5", "CA-drain", {"tenant": "t"}))
        await asyncio.sleep(0.2)
        drain = asyncio.create_task(live.bridge.drain(0.5))
        await asyncio.sleep(0.1)
        async with http.get(live.base + "/readyz") as r:
            assert r.status == 503
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(live.media_url)
        assert exc.value.status == 503
        await drain
        closing = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)
        seen = None
        try:
            while seen not in closing:
                seen = (await ws.receive(timeout=2)).type
        except aiohttp.ClientConnectionResetError:
            seen = aiohttp.WSMsgType.CLOSED  # reset while answering a ping: closed all the same
        assert seen in closing  # the bridge ended the call and closed Twilio's socket
        await ws.close()
        await asyncio.sleep(0.2)
    report = open_store(live.settings.database_url).get("CA-drain")
    assert report is not None and report["end_reason"] == "shutdown"


async def test_twilio_vanishing_without_stop_still_writes_the_report(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZ6", "CA-vanish", {"tenant": "t"}))
        await ws.send_str("{broken json")
        await asyncio.sleep(0.1)
        await ws.close()
        await asyncio.sleep(0.3)
    report = open_store(live.settings.database_url).get("CA-vanish")
    assert report is not None
    assert report["end_reason"] == "twilio_closed"
    assert report["counters"]["bad_json"] == 1


async def test_ai_disconnect_reconnects_and_the_call_goes_on(tmp_path: Path) -> None:
    fake = FakeRealtimeConfig(speed=8.0, close_after_events=60)  # drops the link once, mid-call
    async with live_bridge(tmp_path, fake, validate_twilio_signature=False) as live:
        frames = speech_frames(0.5) + silence_frames(1.5)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ7", call_sid="CA-reconnect", params={})
        async with aiohttp.ClientSession() as http:
            await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2, session=http)
        await asyncio.sleep(0.3)
        sessions = len(live.fake.sessions)
    report = open_store(live.settings.database_url).get("CA-reconnect")
    assert report is not None
    assert report["counters"]["ai_reconnects"] >= 1
    assert sessions >= 2
    assert report["end_reason"] == "stop"  # the call outlived the AI connection
    assert report["inbound"]["frames"] == len(frames)


async def test_session_expiry_is_reported(tmp_path: Path) -> None:
    fake = FakeRealtimeConfig(speed=8.0, session_expire_after_s=0.4)
    async with live_bridge(tmp_path, fake, validate_twilio_signature=False) as live:
        frames = silence_frames(1.2)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ8", call_sid="CA-expire", params={})
        async with aiohttp.ClientSession() as http:
            await caller.run(schedule(frames), hangup_after_s=1.4, session=http)
        await asyncio.sleep(0.3)
    report = open_store(live.settings.database_url).get("CA-expire")
    assert report is not None
    assert report["counters"]["ai_errors"] >= 1
    assert report["counters"]["ai_reconnects"] >= 1
    assert json.dumps(report)  # serialisable as stored


async def test_access_log_never_carries_query_strings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="aiohttp.access")
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http, \
            http.post(live.base + "/twiml?tenant=t&patient_id=P-4242", data={}) as resp:
        assert resp.status == 200
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any("/twiml" in line for line in access)
    assert not any("P-4242" in r.getMessage() for r in caplog.records)


async def test_ai_frames_go_out_inline_until_the_socket_pushes_back_and_stay_in_order(tmp_path: Path) -> None:
    """Caller frames go to the AI at once while aiohttp has not paused writing on its socket, and
    through the per-call writer while it has; either way the AI gets every frame, in order."""
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        frames = [bytes([0x80 + i % 100]) * 160 for i in range(150)]  # each frame tells its place
        caller = SimulatedCaller(live.media_url, stream_sid="MZflow", call_sid="CA-flow", params={})
        call = asyncio.create_task(caller.run(schedule(frames), hangup_after_s=3.2, session=http))
        async with asyncio.timeout(5):
            while not live.bridge.calls or next(iter(live.bridge.calls)).leg is None:
                await asyncio.sleep(0.01)
        driver = next(iter(live.bridge.calls))
        await asyncio.sleep(0.5)
        leg = driver.leg
        assert isinstance(leg, RealtimeWsLeg) and leg.ws is not None
        assert leg.send_now([])  # aiohttp's flow control is where the inline path looks
        protocol = leg.ws._writer.protocol
        protocol.pause_writing()  # what asyncio's transport calls above its high-water mark
        assert not leg.send_now([])
        await asyncio.sleep(0.6)
        protocol.resume_writing()
        assert leg.send_now([])
        await call
    appended = b"".join(
        base64.b64decode(json.loads(e)["audio"]) for e in live.fake.sessions[0].received
        if json.loads(e)["type"] == "input_audio_buffer.append")
    sent = b"".join(frames)
    start = sent.index(appended[:160])  # frames sent before the AI leg was up are not forwarded
    assert appended == sent[start:] and len(appended) >= 120 * 160


async def test_stats_count_every_frame_the_ai_got_from_live_and_ended_calls(tmp_path: Path) -> None:
    """/stats adds up the calls' own latency records, and /metrics' latency histogram is fed from
    them: each caller frame the AI received is one inbound frame in both, whether its call is still
    live or has ended."""
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:

        async def appends() -> int:
            return sum(json.loads(e)["type"] == "input_audio_buffer.append"
                       for session in live.fake.sessions for e in session.received)

        async def inbound_frames() -> int:
            async with http.get(live.base + "/stats") as r:
                return int((await r.json())["inbound"]["frames"])

        async def metrics_frames() -> int:
            async with http.get(live.base + "/metrics") as r:
                text = await r.text()
            return int(next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith('mosbridge_bridge_latency_seconds_count{direction="inbound"}')))

        first = SimulatedCaller(live.media_url, stream_sid="MZs1", call_sid="CA-s1", params={})
        await first.run(schedule(silence_frames(0.8)), hangup_after_s=1.0, session=http)  # 40 frames
        second = SimulatedCaller(live.media_url, stream_sid="MZs2", call_sid="CA-s2", params={})
        call = asyncio.create_task(second.run(schedule(silence_frames(3.0)), hangup_after_s=3.2, session=http))
        async with asyncio.timeout(5):
            while await appends() < 80:
                await asyncio.sleep(0.05)
        assert live.bridge.calls  # the second call is live
        mid = await inbound_frames()
        assert abs(mid - await appends()) <= 10  # a few frames may be on the wire
        assert abs(await metrics_frames() - await appends()) <= 10
        await call
        async with asyncio.timeout(5):
            while live.bridge.calls:
                await asyncio.sleep(0.05)
        assert await inbound_frames() == await metrics_frames() == await appends() >= 100


async def test_stats_and_metrics_time_the_garbage_collectors_pauses(tmp_path: Path) -> None:
    async with live_bridge(tmp_path) as live, aiohttp.ClientSession() as http:
        gc.collect()  # one full pass while the bridge watches
        async with http.get(live.base + "/stats") as r:
            stats = await r.json()
        async with http.get(live.base + "/metrics") as r:
            metrics = await r.text()
    full = stats["gc_pause_ms"]["2"]
    assert full["collections"] >= 1 and full["max"] > 0.0 and full["total"] >= full["max"]
    count = next(line for line in metrics.splitlines()
                 if line.startswith('mosbridge_gc_pause_seconds_count{generation="2"}'))
    assert float(count.split()[-1]) >= 1
    assert live.bridge._gc_watch not in gc.callbacks  # a stopped bridge leaves the collector alone


async def test_more_than_a_hundred_calls_each_get_their_ai_session_at_once(tmp_path: Path) -> None:
    """aiohttp's default connector holds at most 100 connections: the 101st call's AI session
    would wait, silently, for another call to hang up."""
    calls = 110
    conn = aiohttp.TCPConnector(limit=0)
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, \
            aiohttp.ClientSession(connector=conn) as http:
        sockets = [await http.ws_connect(live.media_url) for _ in range(calls)]
        # read each socket as Twilio does, so aiohttp answers the bridge's pings
        readers = [asyncio.create_task(_drain(ws)) for ws in sockets]
        for i, ws in enumerate(sockets):
            await ws.send_str(start_message(f"MZc{i}", f"CA-many-{i}", {"tenant": "t"}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while loop.time() < deadline and sum(d.leg is not None for d in live.bridge.calls) < calls:
            await asyncio.sleep(0.05)
        connected = sum(d.leg is not None for d in live.bridge.calls)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*readers)
    assert connected == calls


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def test_a_stall_is_seen_on_time_with_30_s_interval_and_ping(tmp_path: Path) -> None:
    """The core's timer is re-armed after every input (as aioquic does): a response that stalls
    is counted after ai_stall_s, not at the next 30 s interval or ping."""
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1500, stall_after_deltas=2)
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False, interval_s=30.0,
                           ping_interval_s=30.0, ai_stall_s=0.5) as live, aiohttp.ClientSession() as http:
        frames = speech_frames(1.0) + silence_frames(2.5)
        caller = SimulatedCaller(live.media_url, stream_sid="MZs", call_sid="CA-stall", params={"tenant": "t"})
        await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2, session=http)
        await asyncio.sleep(0.3)
        report = open_store(live.settings.database_url).get("CA-stall")
    assert report is not None and report["duration_s"] < 5.0
    assert report["counters"]["ai_stalls"] == 1


async def test_without_an_ai_key_the_bridge_says_so_once_and_is_not_ready(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="mosbridge"):
        async with live_bridge(tmp_path, openai_api_key=None) as live, aiohttp.ClientSession() as http:
            await asyncio.sleep(0.1)
            async with http.get(live.base + "/readyz") as r:
                assert r.status == 503 and (await r.json())["status"] == "no_ai_key"
    lines = [r.getMessage() for r in caplog.records if "OPENAI_API_KEY" in r.getMessage()]
    assert len(lines) == 1 and "mosbridge demo" in lines[0]


async def test_an_unreachable_ai_is_reported_but_the_pod_stays_ready(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.ERROR, logger="mosbridge"):
        async with live_bridge(tmp_path, openai_url=f"ws://127.0.0.1:{port}/v1/realtime") as live, \
                aiohttp.ClientSession() as http:
            await asyncio.sleep(0.2)
            async with http.get(live.base + "/readyz") as r:
                body = await r.json()
    assert r.status == 200 and body["ai"].startswith(f"unreachable: 127.0.0.1:{port}")
    assert sum(f"127.0.0.1:{port}" in rec.getMessage() for rec in caplog.records) == 1


async def test_the_root_leads_to_the_dashboard(tmp_path: Path) -> None:
    async with live_bridge(tmp_path) as live, aiohttp.ClientSession() as http:
        async with http.get(live.base + "/", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/dashboard"
        async with http.get(live.base + "/readyz") as r:
            assert (await r.json())["ai"] == "ok"
