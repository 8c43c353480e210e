"""Prometheus exposition at /metrics, read back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bridge.caller import SimulatedCaller, start_message
from bridge.store import open_store
from tests.bridge.live import live_bridge, schedule, silence_frames


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_after_calls(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False) as live, aiohttp.ClientSession() as http:
        caller = SimulatedCaller(live.media_url, stream_sid="MZm", call_sid="CA-metrics", params={"tenant": "acme"})
        await caller.run(schedule(silence_frames(1.0), drop={10, 11}), hangup_after_s=1.1, session=http)
        ws = await http.ws_connect(live.media_url)
        await ws.send_str(start_message("MZx", "CA-bad", {"tenant": "beta"}))
        await ws.send_str("{not json")
        await ws.close()
        await asyncio.sleep(0.3)
        async with http.get(live.base + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
    s = samples(text)
    report = open_store(live.settings.database_url).get("CA-metrics")
    assert report is not None
    assert s[("mosbridge_calls_total", (("end_reason", "stop"), ("tenant", "acme")))] == 1
    assert s[("mosbridge_calls_total", (("end_reason", "twilio_closed"), ("tenant", "beta")))] == 1
    assert s[("mosbridge_call_mos_count", (("tenant", "acme"),))] == 1
    assert s[("mosbridge_call_mos_sum", (("tenant", "acme"),))] == report["mos"]
    assert s[("mosbridge_call_loss_pct_sum", (("tenant", "acme"),))] == report["inbound"]["loss_pct"]
    assert s[("mosbridge_problems_total", (("kind", "bad_json"),))] == 1
    frames = s[("mosbridge_bridge_latency_seconds_count", (("direction", "inbound"),))]
    # every 20 ms slot (48 frames + 2 concealed) went to the AI, but those that came before the AI
    # connection was up (counted in the report)
    assert frames == 50 - report["counters"].get("frames_while_ai_down", 0) >= 45
    assert s[("mosbridge_calls_live", ())] == 0
    assert not any("CA-metrics" in json.dumps(k) for k in s)  # no per-call labels
