"""Prometheus exposition at /metrics, read back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__
from bridge.core.events import Direction
from bridge.core.report_json import StoredReport
from bridge.live.metrics import LATENCY_S_BUCKETS, BridgeMetrics
from bridge.ops.store import open_store
from bridge.stand_ins.twilio_caller import SimulatedCaller, start_message
from tests.bridge.live_rig import live_bridge, schedule, silence_frames
from tests.reports import stored


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


def _report(tenant: str | None, mos: float = 4.2, **counters: int) -> StoredReport:
    return stored({"tenant": tenant, "mos": mos, "end_reason": "stop", "inbound": {"jitter_ms": 3.0, "loss_pct": 0.5},
            "counters": counters})


def _families(m: BridgeMetrics) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}


def test_tenant_labels_are_capped() -> None:
    m = BridgeMetrics(max_tenants=2)
    for tenant in ("acme", "beta", "gamma", "delta", "acme", None, ""):
        m.call_ended(_report(tenant))
    m.call_ended(_report("gamma", mos=3.0))
    s = samples(m.exposition().decode())
    assert s[("mosbridge_call_mos_count", (("tenant", "acme"),))] == 2
    assert s[("mosbridge_call_mos_count", (("tenant", "beta"),))] == 1
    assert s[("mosbridge_call_mos_count", (("tenant", "other"),))] == 3  # gamma twice, delta
    assert s[("mosbridge_call_mos_sum", (("tenant", "other"),))] == 4.2 + 4.2 + 3.0
    assert s[("mosbridge_call_mos_count", (("tenant", "unknown"),))] == 2  # no tenant, empty tenant
    assert s[("mosbridge_calls_total", (("end_reason", "stop"), ("tenant", "other")))] == 3
    assert s[("mosbridge_call_loss_pct_count", (("tenant", "other"),))] == 3
    assert s[("mosbridge_tenant_label_overflow_total", ())] == 3
    assert s[("mosbridge_tenant_labels", ())] == 2
    tenants = {dict(labels).get("tenant") for _, labels in s}
    assert tenants - {None} == {"acme", "beta", "other", "unknown"}
    # a tenant keeps the label it got first, however many come after
    assert m.tenant_label("acme") == "acme" and m.tenant_label("gamma") == "other"


def test_the_cap_bounds_series_under_many_tenants() -> None:
    m = BridgeMetrics(max_tenants=5)
    for i in range(500):
        m.call_ended(_report(f"t{i}"))
    s = samples(m.exposition().decode())
    tenants = {dict(labels)["tenant"] for _, labels in s if "tenant" in dict(labels)}
    assert tenants == {"t0", "t1", "t2", "t3", "t4", "other"}
    assert s[("mosbridge_tenant_label_overflow_total", ())] == 495
    assert s[("mosbridge_call_mos_count", (("tenant", "other"),))] == 495


def test_max_tenants_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BridgeMetrics(max_tenants=0)


def test_report_store_metrics() -> None:
    m = BridgeMetrics()
    s = samples(m.exposition().decode())
    # every result exists from the start, so rate() and increase() see the first write of each
    assert {r: s[("mosbridge_report_writes_total", (("result", r),))] for r in ("ok", "spooled", "failed")} == {
        "ok": 0, "spooled": 0, "failed": 0}
    assert s[("mosbridge_report_spool_depth", ())] == 0
    for result in ("ok", "ok", "spooled", "failed"):
        m.report_write(result)
    m.set_spool_depth(7)
    s = samples(m.exposition().decode())
    assert s[("mosbridge_report_writes_total", (("result", "ok"),))] == 2
    assert s[("mosbridge_report_writes_total", (("result", "spooled"),))] == 1
    assert s[("mosbridge_report_writes_total", (("result", "failed"),))] == 1
    assert s[("mosbridge_report_spool_depth", ())] == 7
    m.set_spool_depth(0)
    assert samples(m.exposition().decode())[("mosbridge_report_spool_depth", ())] == 0
    with pytest.raises(ValueError):
        m.report_write("lost")
    assert _families(m)["mosbridge_report_writes"].type == "counter"
    assert _families(m)["mosbridge_report_spool_depth"].type == "gauge"


def test_alert_gauge_goes_through_the_tenant_cap() -> None:
    m = BridgeMetrics(max_tenants=1)
    m.set_alert("acme", True)
    m.set_alert("beta", True)  # past the cap: "other"
    m.set_alert("gamma", True)
    s = samples(m.exposition().decode())
    assert s[("mosbridge_alert_firing", (("tenant", "acme"),))] == 1
    assert s[("mosbridge_alert_firing", (("tenant", "other"),))] == 1
    assert not any(dict(labels).get("tenant") in ("beta", "gamma") for _, labels in s)
    m.set_alert("beta", False)  # gamma still fires: "other" stays 1
    assert samples(m.exposition().decode())[("mosbridge_alert_firing", (("tenant", "other"),))] == 1
    m.set_alert("gamma", False)
    m.set_alert("acme", False)
    s = samples(m.exposition().decode())
    assert s[("mosbridge_alert_firing", (("tenant", "other"),))] == 0
    assert s[("mosbridge_alert_firing", (("tenant", "acme"),))] == 0
    assert s[("mosbridge_tenant_label_overflow_total", ())] == 0  # only calls count as overflow


def test_build_info_and_problem_kinds_exist_from_the_start() -> None:
    s = samples(BridgeMetrics().exposition().decode())
    assert s[("mosbridge_build_info", (("version", __version__),))] == 1
    assert s[("mosbridge_problems_total", (("kind", "ai_errors"),))] == 0
    assert s[("mosbridge_problems_total", (("kind", "ai_disconnects"),))] == 0
    m = BridgeMetrics()
    m.call_ended(_report("acme", ai_errors=2, ai_disconnects=1, ai_reconnects=1, dtmf=3))
    s = samples(m.exposition().decode())
    assert s[("mosbridge_problems_total", (("kind", "ai_errors"),))] == 2
    assert s[("mosbridge_problems_total", (("kind", "ai_disconnects"),))] == 1
    assert not any(dict(labels).get("kind") in ("ai_reconnects", "dtmf") for _, labels in s)  # normal events


def test_metric_names_and_labels_are_stable() -> None:
    """Dashboards and the rules in deploy/prometheus read these names and labels."""
    m = BridgeMetrics()
    m.call_ended(_report("acme"))
    m.set_alert("acme", False)
    m.frames(Direction.INBOUND, [0.03])
    m.loop_lag.observe(0.0004)
    m.refused.labels(route="media", reason="max_calls").inc()
    fams = _families(m)
    expected = {
        "mosbridge_calls_live": ("gauge", set()),
        "mosbridge_calls": ("counter", {"tenant", "end_reason"}),
        "mosbridge_call_mos": ("histogram", {"tenant"}),
        "mosbridge_call_jitter_ms": ("histogram", {"tenant"}),
        "mosbridge_call_loss_pct": ("histogram", {"tenant"}),
        "mosbridge_bridge_latency_seconds": ("histogram", {"direction"}),
        "mosbridge_deadline_misses": ("counter", {"direction"}),
        "mosbridge_event_loop_lag_seconds": ("histogram", set()),
        "mosbridge_gc_pause_seconds": ("histogram", {"generation"}),
        "mosbridge_problems": ("counter", {"kind"}),
        "mosbridge_tenant_label_overflow": ("counter", set()),
        "mosbridge_tenant_labels": ("gauge", set()),
        "mosbridge_report_spool_depth": ("gauge", set()),
        "mosbridge_report_writes": ("counter", {"result"}),
        "mosbridge_alert_firing": ("gauge", {"tenant"}),
        "mosbridge_build_info": ("gauge", {"version"}),
        "mosbridge_calls_refused": ("counter", {"route", "reason"}),
        "mosbridge_ready": ("gauge", set()),
    }
    assert {n for n in fams if not n.endswith("_created")} == set(expected)  # text format 0.0.4: _created apart
    for name, (kind, labels) in expected.items():
        assert fams[name].type == kind, name
        assert fams[name].samples and all(set(s.labels) - {"le"} == labels for s in fams[name].samples), name


def test_frames_counted_locally_expose_as_prometheus_observe_would() -> None:
    """``frames`` counts into buckets and ``flush_frames`` adds them: the exposition must equal
    prometheus_client's own ``Histogram.observe`` of the same waits, bounds included, and the waits
    over the 20 ms deadline are its misses."""
    waits = [0.0, 0.00005, 0.0001, 0.00010001, 0.001, 0.0199, 0.02, 0.021, 0.1, 0.5, 3.0]
    m = BridgeMetrics()
    registry = CollectorRegistry()
    reference = Histogram("mosbridge_bridge_latency_seconds", "", ["direction"], buckets=LATENCY_S_BUCKETS,
                          registry=registry)
    m.frames(Direction.INBOUND, waits)
    for w in waits:
        reference.labels("inbound").observe(w)
    m.frames(Direction.OUTBOUND, [0.03])
    got = samples(m.exposition().decode())
    ref = samples(generate_latest(registry).decode())
    latency = {k: v for k, v in got.items() if k[0].startswith("mosbridge_bridge_latency_seconds")
               and not k[0].endswith("_created") and ("direction", "inbound") in k[1]}
    assert latency == {k: v for k, v in ref.items() if not k[0].endswith("_created")}
    assert got[("mosbridge_deadline_misses_total", (("direction", "inbound"),))] == 4
    assert got[("mosbridge_bridge_latency_seconds_count", (("direction", "outbound"),))] == 1
    m.frames(Direction.INBOUND, [0.001])  # a second flush adds, and only the new frames
    again = samples(m.exposition().decode())
    assert again[("mosbridge_bridge_latency_seconds_count", (("direction", "inbound"),))] == len(waits) + 1
    assert again[("mosbridge_deadline_misses_total", (("direction", "inbound"),))] == 4
