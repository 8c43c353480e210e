"""deploy/grafana/mosbridge.json: loads, every panel queries Prometheus, and every metric it names exists.

A name in a PromQL expression must be exported by the bridge (BridgeMetrics().exposition() after one
call, one frame each way and one loop-lag reading), a recording rule in
deploy/prometheus/mosbridge-rules.yml, or ALERTS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.core.events import Direction
from bridge.live.metrics import BridgeMetrics
from tests.reports import stored

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "mosbridge.json"
RULES = ROOT / "deploy" / "prometheus" / "mosbridge-rules.yml"
BUILTIN_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
PROMQL_KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan", "atan2",
})
MOS_INCIDENT = 4.0
MOS_BREAKS = 3.6

Panel = dict[str, Any]


@cache
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> Iterator[Panel]:
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def query_panels() -> list[Panel]:
    return [p for p in panels() if p["type"] != "row"]


def exprs() -> list[str]:
    out = [t["expr"] for p in query_panels() for t in p["targets"]]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression (or a Grafana label_values(...) query)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", "{}", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "[]", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    e = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", e)  # Grafana variable query
    names = set()
    for m in re.finditer(r"(?<![\w$:.])([A-Za-z_:][\w:]*)(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


@cache
def exposition() -> str:
    metrics = BridgeMetrics()
    metrics.frames(Direction.INBOUND, [0.0004])
    metrics.frames(Direction.OUTBOUND, [0.03])
    metrics.loop_lag.observe(0.0004)
    metrics.call_ended(stored({"tenant": "acme", "end_reason": "stop", "mos": 4.3,
                        "inbound": {"jitter_ms": 3.0, "loss_pct": 0.5}, "counters": {"bad_json": 1}}))
    return metrics.exposition().decode()


@cache
def exported() -> dict[str, set[str]]:
    """Every exported sample name (with _total, _bucket, _count...) -> the labels it carries."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition()):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def recording_rules() -> set[str]:
    groups = (yaml.safe_load(RULES.read_text()) or {}).get("groups", [])
    return {rule["record"] for group in groups for rule in group.get("rules", []) if "record" in rule}


def used_names() -> set[str]:
    return {name for e in exprs() for name in metric_names(e)}


# ----------------------------------------------------------------------------- structure


def test_dashboard_loads_with_panels() -> None:
    d = dashboard()
    assert d["uid"] and d["title"]
    assert 36 <= d["schemaVersion"] <= 41
    assert len(query_panels()) >= 10
    assert {p["type"] for p in query_panels()} <= {"timeseries", "stat", "heatmap", "bargauge", "table"}


def test_panel_ids_unique_and_layout_without_overlap() -> None:
    ps = query_panels()
    assert len({p["id"] for p in ps}) == len(ps)
    cells: set[tuple[int, int]] = set()
    for p in ps:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_datasource_and_tenant_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    tenant = variables["tenant"]
    query = tenant["query"]["query"] if isinstance(tenant["query"], dict) else tenant["query"]
    assert query == "label_values(mosbridge_call_mos_count, tenant)"
    assert tenant["multi"] is True and tenant["includeAll"] is True
    assert "tenant" in exported()["mosbridge_call_mos_count"]


def test_every_panel_has_datasource_and_targets() -> None:
    for p in query_panels():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t.get("datasource", p["datasource"]) == p["datasource"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]


def test_mos_panels_mark_incident_and_breaking_thresholds() -> None:
    mos = [p for p in query_panels() if any("tenant:mosbridge_call_mos:mean5m" in t["expr"] for t in p["targets"])]
    assert any(p["type"] == "timeseries" for p in mos)
    for p in mos:
        steps = {s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        assert {MOS_INCIDENT, MOS_BREAKS} <= steps, p["title"]


def test_required_views_are_present() -> None:
    used = used_names()
    for name in ("mosbridge_calls_live", "mosbridge_calls_total", "tenant:mosbridge_call_mos:mean5m",
                 "mosbridge_call_mos_bucket", "mosbridge_call_jitter_ms_bucket", "mosbridge_call_loss_pct_bucket",
                 "mosbridge_bridge_latency_seconds_bucket", "mosbridge_deadline_misses_total",
                 "mosbridge_event_loop_lag_seconds_bucket", "mosbridge_problems_total", "ALERTS",
                 "mosbridge_report_spool_depth"):
        assert name in used, name
    assert any(p["type"] == "heatmap" for p in query_panels())


def test_event_loop_lag_panel_beside_latency_and_deadline_misses() -> None:
    """p99 of the lag histogram per pod, with the alert's 20 ms threshold drawn, in the row of the
    bridge latency and deadline misses panels; the alert's dashboard annotation names it."""
    by_title = {p["title"]: p for p in query_panels()}
    lag = by_title["Event loop lag p99 by pod"]
    assert lag["type"] == "timeseries"
    [target] = lag["targets"]
    assert " ".join(target["expr"].split()) == ("histogram_quantile(0.99, sum by (le, instance) "
                                                "(rate(mosbridge_event_loop_lag_seconds_bucket[$__rate_interval])))")
    assert "{{instance}}" in target["legendFormat"]
    defaults = lag["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    assert 0.02 in {s["value"] for s in defaults["thresholds"]["steps"]}
    rows = {by_title[t]["gridPos"]["y"] for t in ("Bridge-added latency p50 / p99 by direction",
                                                  "Deadline misses by direction", "Event loop lag p99 by pod")}
    assert rows == {lag["gridPos"]["y"]}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alert = next(r for g in groups for r in g["rules"] if r.get("alert") == "MosbridgeEventLoopLag")
    assert "> 0.02" in alert["expr"]
    assert alert["annotations"]["dashboard"].lower().endswith(lag["title"].lower())


def test_gc_panel_shows_the_share_of_time_in_collections_beside_the_alerts() -> None:
    by_title = {p["title"]: p for p in query_panels()}
    gc_panel = by_title["Time in garbage collection by pod"]
    [target] = gc_panel["targets"]
    assert " ".join(target["expr"].split()) == (
        "sum by (instance) (rate(mosbridge_gc_pause_seconds_sum[$__rate_interval]))")
    assert gc_panel["fieldConfig"]["defaults"]["unit"] == "percentunit"  # seconds per second
    assert exported()["mosbridge_gc_pause_seconds_sum"] == {"generation"}
    alerts = by_title["Mosbridge alerts firing"]
    assert gc_panel["gridPos"]["y"] == alerts["gridPos"]["y"]
    assert alerts["gridPos"]["x"] + alerts["gridPos"]["w"] <= gc_panel["gridPos"]["x"]


# ----------------------------------------------------------------------------- metric names


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, tenant) (rate(mosbridge_call_jitter_ms_bucket'
            '{tenant=~"$tenant", le!="+Inf"}[$__rate_interval]))) / on (tenant) group_left '
            'tenant:mosbridge_call_mos:mean5m or vector(0) and ALERTS{alertname=~"Mosbridge.*"} offset 5m')
    assert metric_names(expr) == {"mosbridge_call_jitter_ms_bucket", "tenant:mosbridge_call_mos:mean5m", "ALERTS"}
    assert metric_names("sum(mosbridge_calls_live) by (pod)") == {"mosbridge_calls_live"}
    assert metric_names("label_values(mosbridge_call_mos_count, tenant)") == {"mosbridge_call_mos_count"}


def test_exported_metric_names_exist() -> None:
    plain = {n for n in used_names() if ":" not in n and n not in BUILTIN_SERIES}
    unknown = plain - set(exported())
    assert not unknown, f"the bridge does not export {sorted(unknown)}"


def test_recording_rules_exist() -> None:
    recorded = {n for n in used_names() if ":" in n}
    assert recorded, "the dashboard should use the tenant MOS recording rule"
    missing = recorded - recording_rules()
    assert not missing, f"no recording rule defines {sorted(missing)}"


def test_tenant_metrics_follow_the_tenant_variable() -> None:
    """Every selector of a tenant-labelled series filters by $tenant, so the variable means something."""
    tenant_series = {n for n, labels in exported().items() if "tenant" in labels} | {
        n for n in used_names() if n.startswith("tenant:")}
    for e in exprs():
        if e.startswith("label_values"):
            continue
        for m in re.finditer(r"([A-Za-z_:][\w:]*)(\{[^}]*\})?", re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)):
            if m.group(1) in tenant_series:
                start, end = m.span()
                selector = e[start:][: end - start + 40]
                assert 'tenant=~"$tenant"' in selector, f"{m.group(1)} without the tenant filter in {e}"
