"""End to end over real loopback WebSockets: a simulated Twilio caller -> mosbridge -> the
Realtime stand-in and back, with the report read from the real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
from pathlib import Path

import aiohttp
import pytest

from bridge.ops.store import open_store
from bridge.protocols.capture import read_capture
from bridge.protocols.pcap import caller_rtp_pcap
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, encode_audio, speech_like
from bridge.stand_ins.simulate import burst_r, playout_truth, truth_mos
from bridge.stand_ins.twilio_caller import SimulatedCaller
from quality.emodel import r_to_mos
from quality.impairments import CodecChain
from tests.bridge.live_rig import gilbert_drops, live_bridge, schedule, silence_frames, speech_frames
from tests.reports import loose
from tests.tshark import tshark_streams

PARAMS = {"tenant": "acme-health", "vertical": "healthcare", "patient_id": "P-998877"}


async def test_audio_round_trip_barge_in_and_report(tmp_path: Path) -> None:
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1500, min_chunk_ms=90, max_chunk_ms=170)
    # a message per 20 ms frame (as before chunking): test_chunked_audio_* covers the 100 ms default
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False, outbound_chunk_ms=0) as live:
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
    # A live loopback call shaped as Twilio sends it: Gilbert loss before Twilio (media.timestamp
    # steps over the lost frames, chunk never skips), exponential extra delay of mean 15 ms in
    # TCP order, the default adaptive buffer and G.711-with-PLC edge.
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_tenants="t2",
                           capture_dir=str(tmp_path / "captures")) as live:
        n = 500  # 10 s of caller audio, no speech: the AI stays quiet
        frames = silence_frames(n * 0.02)
        drops = gilbert_drops(n, p=0.012, q=0.4, seed=3)
        rng = random.Random(5)
        delays = [rng.expovariate(1000.0 / 15.0) for _ in range(n)]
        plan = schedule(frames, drop=drops, delays=delays)
        caller = SimulatedCaller(live.media_url, stream_sid="MZ2", call_sid="CA-e2e-2", params={"tenant": "t2"})
        async with aiohttp.ClientSession() as http:
            result = await caller.run(plan, hangup_after_s=n * 0.02 + 0.4, session=http)
        await asyncio.sleep(0.3)
        report = open_store(live.settings.database_url).get("CA-e2e-2")
    assert report is not None
    inbound = report["inbound"]

    # Loss is exact: ground truth from the generator, counted on the media clock.
    expected_loss = 100.0 * len(drops) / n
    assert 2.0 <= expected_loss <= 5.0
    assert inbound["loss_pct"] == pytest.approx(expected_loss)
    assert (inbound["expected"], inbound["lost"], inbound["chunk_gaps"]) == (n, len(drops), 0)
    runs = sum(1 for c in drops if c - 1 not in drops)
    assert inbound["gaps"] == runs and inbound["max_loss_run"] > 1

    # Jitter: RFC 3550 J over the times the caller actually sent, mean and max as Wireshark
    # reports them, within loopback noise.
    transits = [at - media_ms / 1000.0 for media_ms, at in result.sent_at]
    j, seen = 0.0, []
    for prev, cur in itertools.pairwise(transits):
        j += (abs(cur - prev) - j) / 16.0
        seen.append(j)
    assert inbound["jitter_ms"] == pytest.approx(1000 * sum(seen) / len(seen), abs=1.0)
    assert inbound["jitter_max_ms"] == pytest.approx(1000 * max(seen), abs=3.0)

    # MOS: G.107 on the generator's ground truth (loss pattern, planned delay variation's p99).
    buffer_ms, late_pct = playout_truth([f.send_at - f.media_ms / 1000.0 for f in plan])
    expected = truth_mos(loss_pct=expected_loss, burst_r=burst_r(drops, n), buffer_ms=buffer_ms, late_pct=late_pct,
                         chain=CodecChain.of("g711-plc"), base_delay_ms=60.0 + 20.0)
    assert report["mos"] == pytest.approx(expected, abs=0.1)
    assert inbound["burst_r"] > 1.5
    assert loose(report)["mos"] < r_to_mos(93.2)  # the impairments cost something
    assert report["dominant_impairment"] in ("loss", "jitter")

    # What Wireshark reads from the call's own capture as an RTP pcap: the report's figures, within 1 %.
    [path] = (tmp_path / "captures").rglob("*.jsonl")
    pcap = tmp_path / "call.pcap"
    pcap.write_bytes(caller_rtp_pcap(read_capture(path)))
    ws = tshark_streams(pcap)
    assert (ws["packets"], ws["lost"]) == (inbound["frames"], inbound["lost"])
    assert inbound["jitter_ms"] == pytest.approx(ws["mean_jitter_ms"], rel=0.01, abs=0.0006)
    assert inbound["jitter_max_ms"] == pytest.approx(ws["max_jitter_ms"], rel=0.01, abs=0.0006)


async def test_live_calls_land_in_the_mos_table_rows(tmp_path: Path) -> None:
    # Two rows of the MOS table as live loopback calls at once (10 s each, Twilio-shaped): 5 %
    # random loss (exactly 25 of 500 frames) and exponential jitter of mean 15 ms.
    n = 500
    rng = random.Random(9)
    drops = set(rng.sample(range(2, n), 25))
    jitter = [rng.expovariate(1000.0 / 15.0) for _ in range(n)]
    plans = {"CA-row-loss": schedule(silence_frames(n * 0.02), drop=drops),
             "CA-row-jitter": schedule(silence_frames(n * 0.02), delays=jitter)}
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        await asyncio.gather(*(
            SimulatedCaller(live.media_url, stream_sid="MZ" + sid, call_sid=sid, params={"tenant": "rows"})
            .run(plan, hangup_after_s=n * 0.02 + 0.4, session=http) for sid, plan in plans.items()))
        await asyncio.sleep(0.3)
        store = open_store(live.settings.database_url)
        loss, jittery = store.get("CA-row-loss"), store.get("CA-row-jitter")
    assert loss is not None and jittery is not None
    assert loss["inbound"]["loss_pct"] == pytest.approx(5.0) and jittery["inbound"]["loss_pct"] == 0.0
    assert 3.62 <= loose(loss)["mos"] <= 3.98
    assert 4.12 <= loose(jittery)["mos"] <= 4.42
    assert jittery["inbound"]["late_pct"] <= 2.0


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
    assert report["codec_chain"] == {"inbound": "g711-plc -> pcm24k", "outbound": "pcm24k -> g711-plc"}


async def test_chunked_audio_reaches_the_caller_whole_with_a_mark_per_message(tmp_path: Path) -> None:
    """The default: the AI's audio in media messages of up to 100 ms, a delta's last partial frame
    sent with it (Twilio plays any length), each followed by a mark the caller echoes once it has
    played; nothing is lost or reordered on the way."""
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1500, min_chunk_ms=90, max_chunk_ms=170)
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False) as live:
        frames = speech_frames(1.0) + silence_frames(3.0)
        caller = SimulatedCaller(live.media_url, stream_sid="MZc", call_sid="CA-chunk", params=PARAMS)
        async with aiohttp.ClientSession() as http:
            result = await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.3, session=http)
        await asyncio.sleep(0.3)
        report = open_store(live.settings.database_url).get("CA-chunk")
    assert report is not None
    audio = [base64.b64decode(m["media"]["payload"]) for m in result.received  # type: ignore[index]
             if m.get("event") == "media"]
    sizes = [len(a) for a in audio]
    assert sizes and all(0 < s < 800 + 160 for s in sizes) and max(sizes) >= 800
    assert any(s % 160 for s in sizes)  # the stand-in's deltas are not frame-aligned: tails went at once
    kinds = [m.get("event") for m in result.received if m.get("event") in ("media", "mark")]
    assert all(a == "media" and b == "mark" for a, b in zip(kinds[::2], kinds[1::2], strict=True))
    heard = bytes(result.played)  # Twilio's playout of what came, in order, 20 ms a frame
    assert len(heard) >= 800 and heard == b"".join(audio)[: len(heard)]
    assert report["counters"]["marks_sent"] == len(sizes)
