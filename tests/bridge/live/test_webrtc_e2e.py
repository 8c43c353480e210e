"""opus16k end to end over WebRTC on loopback: a simulated Twilio caller, the live bridge, and the
WebRTC Realtime stand-in (an aiortc peer behind a local /v1/realtime/calls), all real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from bridge.codecs.g711 import ulaw_decode
from bridge.ops.store import open_store
from bridge.protocols.capture import read_capture
from bridge.replay.run import replay
from bridge.stand_ins.realtime_webrtc import FakeRealtimeWebRtcServer, IdleAudio
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig
from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live.test_metrics import samples
from tests.bridge.live_rig import live_bridge, schedule, silence_frames, speech_frames
from tests.reports import loose


@pytest.mark.parametrize("idle_audio", ["none", "silence"])
async def test_a_call_over_the_webrtc_leg(tmp_path: Path, idle_audio: IdleAudio) -> None:
    """Whether the AI's track goes quiet between answers or carries silence, the call works."""
    config = FakeRealtimeConfig(response_ms=1200, api_key="sk-test")
    async with FakeRealtimeWebRtcServer(config, idle_audio=idle_audio) as rtc, live_bridge(
            tmp_path, validate_twilio_signature=False, ai_format="opus16k", openai_calls_url=rtc.url,
            webrtc_ice_addresses="127.0.0.1", ping_interval_s=0.5) as live, aiohttp.ClientSession() as http:
        frames = silence_frames(0.6) + speech_frames(1.2) + silence_frames(3.4)
        caller = SimulatedCaller(live.media_url, stream_sid="MZrtc", call_sid="CA-rtc-1", params={"tenant": "acme"},
                                 speech_ends=[1.8])
        result = await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2, session=http)
        await asyncio.sleep(0.3)
        async with http.get(live.base + "/metrics") as r:
            metrics = samples(await r.text())
        [call] = rtc.calls
        report = open_store(live.settings.database_url).get("CA-rtc-1")
    assert report is not None

    # The offer asked for Opus at 16 kHz audio bandwidth, and the session went with the SDP.
    assert call.offer_fmtp.get("maxplaybackrate") == "16000"
    assert call.offer_fmtp.get("sprop-maxcapturerate") == "16000"
    first = call.received_events[0]
    assert first["type"] == "session.update" and "format" not in first["session"]["audio"]["input"]
    # Caller audio reached the AI on the track as 20 ms Opus packets (those sent once the leg was up).
    assert call.frames_received >= len(frames) - report["counters"].get("frames_while_ai_down", 0) - 5
    assert call.audio_received_s > 0.8 * len(frames) * 0.02 - 2.0
    # The stand-in heard speech, answered on its track, and the caller heard it.
    sent_types = [e["type"] for e in call.sent_events]
    assert "input_audio_buffer.speech_stopped" in sent_types and "output_audio_buffer.started" in sent_types
    heard = ulaw_decode(result.played).astype(np.float64)
    assert result.media_received >= 40 and np.sqrt(np.mean(heard ** 2)) > 300
    assert result.turn_latency_s and 0.0 < result.turn_latency_s[0] < 2.0
    if idle_audio == "none":
        # nothing held back: every packet of the answer reached the caller, its last 80 ms too
        assert result.media_received == call.frames_sent

    assert report["ai_format"] == "opus16k" and report["end_reason"] == "stop"
    assert report["codec_chain"] == {"inbound": "g711-plc -> opus16k", "outbound": "opus16k -> g711-plc"}
    leg = loose(report)["ai_leg"]
    assert leg["transport"] == "webrtc" and leg["rtp"]["packets_sent"] > 100
    assert leg["rtp"]["packets_received"] >= 40 and leg["rtp"]["packets_lost"] == 0
    # Loopback RTT from RTCP (RFC 3550 §6.4.1) is a few ms plus any stall of the one event loop that
    # runs bridge, stand-in and caller here (70 ms seen on a loaded CI machine); the bound catches a
    # unit slip (seconds, or 1/65536 s NTP units, read as ms), not the machine's load.
    assert 0.0 <= leg["rtp"]["jitter_ms"] < 20.0 and 0.0 < leg["rtp"]["rtt_ms"] < 250.0
    assert report["playback"]["frames"] >= 40 and report["counters"].get("ai_bad_audio", 0) == 0
    assert report["inbound"]["bridge_latency_ms"]["p99"] < 20.0
    assert metrics[("mosbridge_calls_total", (("end_reason", "stop"), ("tenant", "acme")))] == 1


async def test_a_captured_webrtc_call_replays_to_the_same_report(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    config = FakeRealtimeConfig(response_ms=1500, api_key="sk-test")
    async with FakeRealtimeWebRtcServer(config) as rtc, live_bridge(
            tmp_path, validate_twilio_signature=False, ai_format="opus16k", openai_calls_url=rtc.url,
            webrtc_ice_addresses="127.0.0.1", ping_interval_s=0.5, capture_dir=str(captures),
            capture_tenants="*") as live, aiohttp.ClientSession() as http:
        # talk, let the AI answer, barge in on it, then listen
        frames = silence_frames(0.4) + speech_frames(1.0) + silence_frames(1.0) + speech_frames(0.6) \
            + silence_frames(2.5)
        caller = SimulatedCaller(live.media_url, stream_sid="MZrr", call_sid="CA-rtc-replay", params={"tenant": "t"})
        await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2, session=http)
        await asyncio.sleep(0.3)
        live_report = open_store(live.settings.database_url).get("CA-rtc-replay")
    assert live_report is not None
    capture = read_capture(captures / "CA-rtc-replay.jsonl")
    dirs = {r.dir for r in capture.records}
    assert {"ai_packet_in", "ai_rtp", "ai_out"} <= dirs
    replayed = loose(replay(capture).report.to_json())
    assert replayed == {k: v for k, v in live_report.items() if k not in ("started_at", "ended_at")}
    assert replayed["counters"]["barge_ins"] >= 1 and replayed["ai_leg"]["rtp"]["packets_sent"] > 50


async def test_an_unreachable_calls_endpoint_ends_the_call_with_its_report(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, ai_format="opus16k",
                           openai_calls_url="http://127.0.0.1:1/v1/realtime/calls", max_ai_reconnects=2,
                           ai_reconnect_backoff_s=0.05, webrtc_ice_addresses="127.0.0.1") as live, \
            aiohttp.ClientSession() as http:
        caller = SimulatedCaller(live.media_url, stream_sid="MZx", call_sid="CA-rtc-down", params={"tenant": "t"})
        await caller.run(schedule(silence_frames(3.0)), hangup_after_s=3.2, session=http)
        await asyncio.sleep(0.3)
        report = open_store(live.settings.database_url).get("CA-rtc-down")
    assert report is not None
    assert report["end_reason"].startswith("ai_failed: connect failed")
    assert report["counters"]["ai_disconnects"] == 3 and report["counters"]["ai_reconnects"] == 2
