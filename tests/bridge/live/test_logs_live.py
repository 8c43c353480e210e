"""JSON logs from a live call: the driver's lines and the report line name the call."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import aiohttp

from bridge.live.logs import JsonFormatter
from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live_rig import live_bridge, schedule, silence_frames


async def test_a_live_calls_json_lines_carry_its_ids_and_the_report_as_an_object(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mosbridge")
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        async with live_bridge(tmp_path, validate_twilio_signature=False) as live:
            frames = silence_frames(0.5)
            caller = SimulatedCaller(live.media_url, stream_sid="MZ-json", call_sid="CA-json",
                                     params={"tenant": "acme\r\nINFO forged"})
            async with aiohttp.ClientSession() as http:
                await caller.run(schedule(frames), hangup_after_s=len(frames) * 0.02 + 0.2, session=http)
            await asyncio.sleep(0.3)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(line.keys() >= {"time", "level", "logger", "message"} for line in lines)
    ids = ("CA-json", "MZ-json", "acme\r\nINFO forged")
    started = [line for line in lines if line["message"].startswith("call started")]
    assert len(started) == 1 and (started[0]["call_sid"], started[0]["stream_sid"], started[0]["tenant"]) == ids
    [report] = [line for line in lines if line["logger"] == "mosbridge.report"]
    assert report["message"] == "call report" and (report["call_sid"], report["stream_sid"], report["tenant"]) == ids
    assert report["report"]["call_sid"] == "CA-json" and report["report"]["end_reason"] == "stop"
    assert not any(line["message"].startswith("INFO forged") for line in lines)
