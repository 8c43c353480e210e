"""A capture of a live call replays to the report the live server wrote, field for field."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from bridge.cli.main import main
from bridge.codecs import Transcoder
from bridge.core import call as call_module
from bridge.ops.store import open_store
from bridge.protocols.capture import read_capture
from bridge.replay.run import replay
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig
from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live_rig import live_bridge, schedule, silence_frames, speech_frames

WALL_CLOCK = ("started_at", "ended_at")


@pytest.mark.parametrize("ai_format", ["pcmu", "pcm24k"])
async def test_live_call_replays_to_the_same_report(tmp_path: Path, ai_format: str) -> None:
    fake_cfg = FakeRealtimeConfig(speed=8.0, response_ms=1200, min_chunk_ms=90, max_chunk_ms=170)
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, fake_cfg, validate_twilio_signature=False, ai_format=ai_format,
                           capture_dir=str(captures), capture_tenants="clinic") as live:
        frames = speech_frames(0.8) + silence_frames(1.4) + speech_frames(0.5) + silence_frames(0.6)
        params = {"tenant": "clinic", "patient_id": "P-55"}
        caller = SimulatedCaller(live.media_url, stream_sid="MZr", call_sid="CA-replay-1", params=params)
        other = SimulatedCaller(live.media_url, stream_sid="MZo", call_sid="CA-not-captured",
                                params={"tenant": "other"})
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(
                caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.3, session=http),
                other.run(schedule(silence_frames(0.5)), hangup_after_s=0.6, session=http))
        await asyncio.sleep(0.3)
    live_report = open_store(live.settings.database_url).get("CA-replay-1")
    assert live_report is not None
    files = sorted(p.name for p in captures.glob("*.jsonl"))
    assert files == ["CA-replay-1.jsonl"]  # only the listed tenant's call was recorded
    text = (captures / files[0]).read_text()
    assert "P-55" not in text  # PHI pseudonymized in the capture too

    capture = read_capture(captures / files[0])
    assert capture.header["capture"] == 2 and capture.header["settings"]["ai_format"] == ai_format
    replayed = replay(capture).report.to_json()
    expected = {k: v for k, v in live_report.items() if k not in WALL_CLOCK}
    assert replayed == expected
    # and it is a real call: barge-in, marks, latency, RTT samples all made it into the report
    assert replayed["counters"]["barge_ins"] == 1
    assert replayed["rtt_ms"]["twilio"] is not None
    assert replayed["inbound"]["bridge_latency_ms"] is not None
    assert replayed["bridge_host"]["loop_lag"]["ticks"] > 0  # the loop lag the call lived through


async def test_replay_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_dir=str(captures)) as live:
        caller = SimulatedCaller(live.media_url, stream_sid="MZc", call_sid="CA-cli",
                                 params={"tenant": "x", "capture": "1"})  # per-call opt-in
        async with aiohttp.ClientSession() as http:
            await caller.run(schedule(silence_frames(1.0)), hangup_after_s=1.1, session=http)
        await asyncio.sleep(0.3)
    assert main(["replay", str(captures / "CA-cli.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["call_sid"] == "CA-cli"
    for key in ("mos", "r", "band", "dominant_impairment"):
        assert key in report
    for side in ("inbound", "outbound"):
        for key in ("jitter_ms", "loss_pct", "frames", "gaps"):
            assert key in report[side]


async def test_realtime_replay_acts_as_twilio_against_a_running_bridge(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_dir=str(captures),
                           capture_tenants="*") as live:
        drops = {7, 8, 30}
        frames = silence_frames(1.0)
        caller = SimulatedCaller(live.media_url, stream_sid="MZrt", call_sid="CA-rt", params={"tenant": "rt"})
        async with aiohttp.ClientSession() as http:
            await caller.run(schedule(frames, drop=drops), hangup_after_s=1.1, session=http)
        await asyncio.sleep(0.3)
        code = await asyncio.to_thread(main, ["replay", str(captures / "CA-rt.jsonl"), "--realtime", live.media_url,
                                              "--json"])
        await asyncio.sleep(0.3)
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_sent"] == len(frames) - len(drops)
    store = open_store(live.settings.database_url)
    original, again = store.get("CA-rt"), store.get("CA-rt-replay")
    assert original is not None and again is not None
    assert again["tenant"] == "rt"
    for key in ("frames", "lost", "gaps"):
        assert again["inbound"][key] == original["inbound"][key]


async def test_a_call_that_hit_an_internal_error_replays_to_the_same_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug met by some frames (here: the transcoder raising on every 25th caller frame) is counted
    # by the core's own guard, so the capture of that call reproduces it instead of raising.
    from bridge.codecs import make_transcoder as real

    def buggy(fmt: str, bitrate: int) -> Transcoder:
        tc = real(fmt, bitrate)
        to_ai, seen = tc.to_ai, [0]

        def flaky(frame: bytes) -> list[bytes]:
            seen[0] += 1
            if seen[0] % 25 == 0:
                raise RuntimeError("a bug in the transcoder")
            return to_ai(frame)

        tc.to_ai = flaky  # type: ignore[method-assign]
        return tc

    monkeypatch.setattr(call_module, "make_transcoder", buggy)
    captures = tmp_path / "captures"
    async with live_bridge(tmp_path, validate_twilio_signature=False, capture_dir=str(captures),
                           capture_tenants="*") as live, aiohttp.ClientSession() as http:
        caller = SimulatedCaller(live.media_url, stream_sid="MZi", call_sid="CA-bug", params={"tenant": "t"})
        await caller.run(schedule(silence_frames(1.0)), hangup_after_s=1.3, session=http)
        await asyncio.sleep(0.3)
    live_report = open_store(live.settings.database_url).get("CA-bug")
    assert live_report is not None and live_report["counters"]["internal_errors"] == 2  # frames 25 and 50
    replayed = replay(read_capture(captures / "CA-bug.jsonl")).report.to_json()
    assert replayed == {k: v for k, v in live_report.items() if k not in WALL_CLOCK}
