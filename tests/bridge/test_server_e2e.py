"""End to end over real loopback WebSockets: a simulated Twilio caller -> mosbridge -> the
Realtime stand-in and back, with the report read from the real SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from bridge.caller import SimulatedCaller
from bridge.fake_realtime import FakeRealtimeConfig, encode_audio, speech_like
from bridge.store import open_store
from quality.bands import band
from quality.emodel import r_to_mos
from quality.impairments import CodecChain
from quality.jitter import InterarrivalJitter
from quality.report import QualityInput, assess
from tests.bridge.live import gilbert_drops, live_bridge, schedule, silence_frames, speech_frames

PARAMS = {"tenant": "acme-health", "vertical": "healthcare", "patient_id": "P-998877"}


async def test_audio_round_trip_barge_in_and_report(tmp_path: Path) -> None:
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1500, min_chunk_ms=90, max_chunk_ms=170)
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False) as live:
        # speak 1 s, listen 1.5 s (the AI answers), then barge in for 0.6 s, then listen again
        frames = speech_frames(1.0) + silence_frames(1.6) + speech_frames(0.6) + silence_frames(2.2)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ1", call_sid="CA-e2e-1", params=PARAMS)
        async with aiohttp.ClientSession() as http:
            result = await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.3, session=http)
        await asyncio.sleep(0.3)
        session = live.fake.sessions[0]

    # The AI's audio reached the caller unchanged (pcmu pass-through), in 160-byte frames.
    media = [m for m in result.received if m.get("event") == "media"]
    assert media and all(len(m["media"]["payload"]) == 216 for m in media)  # type: ignore[index]
    first_response = encode_audio(speech_like(1500, 8000), {"type": "audio/pcmu"})
    assert result.played[:4000] == first_response[:4000]

    # Barge-in: one clear, one truncate at what the caller had heard, known from marks.
    assert result.clears == 1
    assert len(session.truncations) == 1
    trunc = session.truncations[0]
    heard_ms = _heard_before_clear(result.received, result.played, first_response)
    assert 0 < trunc["audio_end_ms"] <= heard_ms
    assert heard_ms - trunc["audio_end_ms"] <= 170 + 20  # one delta's worth of mark granularity
    # The stand-in streamed faster than real time, so the response had completed server-side:
    # the barge-in is the bridge clearing audio still queued at Twilio.
    assert session.responses[0]["status"] == "completed"

    # Every event the bridge sent validates against the openai package's GA models (strict).
    from openai.types.realtime import RealtimeClientEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[object] = TypeAdapter(RealtimeClientEvent)
    kinds = set()
    for text in session.received:
        adapter.validate_json(text, strict=True)
        kinds.add(json.loads(text)["type"])
    assert {"session.update", "input_audio_buffer.append", "conversation.item.truncate"} <= kinds

    report = open_store(live.settings.database_url).get("CA-e2e-1")
    assert report is not None
    assert report["end_reason"] == "stop"
    assert report["tenant"] == "acme-health"
    assert "P-998877" not in json.dumps(report)
    assert report["inbound"]["frames"] == len(frames)
    assert report["inbound"]["loss_pct"] == 0.0
    assert report["counters"]["barge_ins"] == 1
    assert report["inbound"]["bridge_latency_ms"]["p99"] < 20.0
    assert report["outbound"]["bridge_latency_ms"]["max"] < 50.0
    assert report["ai_turn_ms"]["to_first_audio_sent"] is not None
    assert report["band"] in ("excellent", "good")
    assert len(report["intervals"]) >= 5


def _heard_before_clear(received: list[dict[str, object]], played: bytes, first: bytes) -> float:
    """ms of the first response the caller had played when the clear came (the played prefix
    that matches the response audio, up to where a second response starts)."""
    n = 0
    while n < len(played) and n < len(first) and played[n] == first[n]:
        n += 1
    return n / 8.0


async def test_injected_bursty_loss_and_jitter_are_reported(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, jitter_buffer="fixed") as live:
        n = 250  # 5 s of caller audio, no speech: the AI stays quiet
        frames = silence_frames(n * 0.02)
        drops = gilbert_drops(n, p=0.012, q=0.4, seed=3)
        import random

        rng = random.Random(5)
        delays = [rng.uniform(0.0, 0.150) for _ in range(n)]
        plan = schedule(frames, drop=drops, delays=delays)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ2", call_sid="CA-e2e-2", params={"tenant": "t2"})
        async with aiohttp.ClientSession() as http:
            await caller.run(plan, hangup_after_s=n * 0.02 + 0.4, session=http)
        await asyncio.sleep(0.3)
        report = open_store(live.settings.database_url).get("CA-e2e-2")
    assert report is not None

    # Loss is exact: ground truth from the generator.
    expected_loss = 100.0 * len(drops) / n
    assert 2.0 <= expected_loss <= 5.0
    assert report["inbound"]["loss_pct"] == pytest.approx(expected_loss)
    runs = sum(1 for c in drops if c - 1 not in drops)
    assert report["inbound"]["gaps"] == runs

    # Jitter: the RFC 3550 estimator over the schedule we actually sent, within loop noise.
    truth = InterarrivalJitter()
    for f in plan:
        truth.update(f.send_at, (f.chunk - 1) * 0.020)
    assert truth.jitter_ms > 20
    assert report["inbound"]["jitter_ms"] == pytest.approx(truth.jitter_ms, abs=4.0)

    # MOS: the same E-model on the ground truth lands in the same band, within 0.15.
    out = report["outbound"]
    q = QualityInput(delay_ms=out["delay_ms"], chain=CodecChain.of("g711"), loss_pct=expected_loss,
                     burst_r=report["inbound"]["burst_r"], buffer_delay_ms=out["buffer_delay_ms"],
                     late_pct=out["late_pct"])
    expected = assess(q)
    assert report["mos"] == pytest.approx(expected.mos, abs=0.15)
    assert report["band"] == band(expected.mos).value
    assert report["mos"] < r_to_mos(93.2)  # the impairments cost something
    assert report["dominant_impairment"] in ("loss", "jitter")


async def test_pcm24k_round_trip_and_barge_in(tmp_path: Path) -> None:
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1500, min_chunk_ms=90, max_chunk_ms=170)
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False, ai_format="pcm24k") as live:
        frames = speech_frames(1.0) + silence_frames(1.6) + speech_frames(0.6) + silence_frames(0.8)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ3", call_sid="CA-e2e-3", params={})
        async with aiohttp.ClientSession() as http:
            result = await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.3, session=http)
        await asyncio.sleep(0.3)
        session = live.fake.sessions[0]
    assert session.session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    # What the caller heard is the AI's 24 kHz speech brought down to 8 kHz mu-law: compare with
    # the same signal made at 8 kHz (a 200 Hz voice with harmonics below 3 kHz survives intact).
    import numpy as np

    from bridge.codecs.g711 import ulaw_decode

    heard = ulaw_decode(result.played[:8000]).astype(np.float64)
    ref = speech_like(1000, 8000).astype(np.float64)
    best = max(float(np.dot(heard[k:k + 6000], ref[:6000])) for k in range(0, 40))
    corr = best / (np.linalg.norm(ref[:6000]) * np.linalg.norm(heard[:6040]) + 1e-9)
    assert corr > 0.9
    assert result.clears == 1 and len(session.truncations) == 1
    report = open_store(live.settings.database_url).get("CA-e2e-3")
    assert report is not None
    assert report["codec_chain"] == {"inbound": "g711 -> pcm24k", "outbound": "pcm24k -> g711"}
