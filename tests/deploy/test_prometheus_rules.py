"""The shipped Prometheus rules and example config: valid for promtool, unit-tested with promtool,
and written against metrics the bridge really exports.

promtool is required (CI installs it with scripts/bootstrap.sh --dev): without it these tests fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.live.metrics import LOOP_LAG_S_BUCKETS, PROBLEM_COUNTERS, WRITE_RESULTS, BridgeMetrics
from quality.lag import SATURATED_P99_MS
from tests.reports import stored

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "mosbridge-rules.yml"
RULE_TESTS = DEPLOY / "mosbridge-rules.test.yml"
EXAMPLE = DEPLOY / "prometheus.example.yml"
K8S_SD_MISSING = "field kubernetes_sd_configs not found"
METRIC = re.compile(r"(?<![:\w])(mosbridge_[a-z0-9_]+)(?![:\w])")  # not the recording rules' level:name:op
SELECTOR = re.compile(r"(?<![:\w])(mosbridge_[a-z0-9_]+)\{([^}]*)\}")


def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if path is None:
        pytest.fail("promtool not found: install the Debian package prometheus (scripts/bootstrap.sh --dev does)")
    return path


def run_promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, input=stdin, timeout=60,
                          check=False)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    r = run_promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_rule_unit_tests_pass() -> None:
    r = run_promtool("test", "rules", str(RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_example_config_passes_promtool_check(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes service discovery, so its promtool rejects
    ``kubernetes_sd_configs`` outright. With such a promtool the example is checked with that one
    block swapped for file_sd (everything else, relabeling and rule files included, as shipped),
    and the Kubernetes block is checked here for what an upstream promtool would need."""
    r = run_promtool("check", "config", str(EXAMPLE))
    if r.returncode == 0:
        return
    assert K8S_SD_MISSING in r.stdout + r.stderr, r.stdout + r.stderr
    text = EXAMPLE.read_text()
    config = yaml.safe_load(text)
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "mosbridge")
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    swapped = text.replace("    kubernetes_sd_configs:\n      - role: pod\n",
                           "    file_sd_configs:\n      - files: [targets.json]\n")
    assert swapped != text
    (tmp_path / "prometheus.yml").write_text(swapped)
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / "targets.json").write_text("[]")
    r = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout


def test_example_config_scrapes_annotated_bridge_pods() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    assert config["rule_files"] == [RULES.name]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "mosbridge")
    relabel = {tuple(r.get("source_labels", ())): r for r in job["relabel_configs"]}
    scrape = relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert scrape["action"] == "keep" and scrape["regex"] == "true"
    assert relabel[("__meta_kubernetes_pod_annotation_prometheus_io_path",)]["target_label"] == "__metrics_path__"
    port = relabel[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    assert port["target_label"] == "__address__"
    assert re.fullmatch(port["regex"], "10.1.2.3:9999;8080") and port["replacement"] == "$1:$2"
    assert re.fullmatch(port["regex"], "10.1.2.3;8080")
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets  # the prometheus-adapter rules and per-pod alerts use them


def test_the_shipped_deployment_is_scraped_by_the_example() -> None:
    """deploy/k8s's pod template carries the label and annotations the example's relabeling keeps."""
    config = yaml.safe_load(EXAMPLE.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "mosbridge")
    keep_app = job["relabel_configs"][0]
    assert keep_app["action"] == "keep"
    docs = list(yaml.safe_load_all((DEPLOY.parent / "k8s" / "deployment.yaml").read_text()))
    pod = next(d for d in docs if d and d.get("kind") == "Deployment")["spec"]["template"]["metadata"]
    labels = pod.get("labels", {})
    joined = keep_app["separator"].join([labels.get("app.kubernetes.io/name", ""), labels.get("app", "")])
    assert re.fullmatch(keep_app["regex"], joined), labels
    annotations = pod.get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    assert annotations.get("prometheus.io/port", "").isdigit()


def exported() -> dict[str, list[dict[str, str]]]:
    """Every sample name the bridge exports after a call and each store/alert method, with the
    label sets it carries."""
    m = BridgeMetrics(max_tenants=1)
    m.call_ended(stored({"tenant": "acme", "mos": 3.8, "end_reason": "stop",
                         "inbound": {"jitter_ms": 4.0, "loss_pct": 1.0}, "counters": {"ai_errors": 1}}))
    m.call_ended(stored({"tenant": "beta", "mos": 4.3, "end_reason": "stop", "inbound": {}, "counters": {}}))
    m.report_write("ok")
    m.set_spool_depth(1)
    m.set_alert("acme", True)
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(m.exposition().decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append(dict(s.labels))
    return out


def test_every_metric_the_rules_use_is_exported() -> None:
    series = exported()
    used: set[str] = set()
    for rule in rules():
        expr = rule["expr"]
        names = set(METRIC.findall(expr))
        used |= names
        for name in names:
            assert name in series, f"{rule.get('alert') or rule.get('record')}: {name} is not exported"
        for name, matchers in SELECTOR.findall(expr):
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                assert op in ("=", "=~"), expr
                for v in value.split("|") if op == "=~" else [value]:
                    assert any(labels.get(label) == v for labels in series[name]), f"{name}{{{label}={v!r}}}"
    recorded = {r["record"] for r in rules() if "record" in r}
    referenced = {name for r in rules() for name in re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", r["expr"])}
    assert referenced <= recorded, referenced - recorded
    assert {"mosbridge_call_mos_sum", "mosbridge_call_mos_count", "mosbridge_deadline_misses_total",
            "mosbridge_problems_total", "mosbridge_report_spool_depth", "mosbridge_report_writes_total",
            "mosbridge_calls_total", "mosbridge_tenant_label_overflow_total",
            "mosbridge_event_loop_lag_seconds_bucket"} <= used
    assert all("tenant" in labels for labels in series["mosbridge_call_mos_sum"])
    assert {"ai_errors", "ai_disconnects"} <= PROBLEM_COUNTERS and "failed" in WRITE_RESULTS


def test_tenant_alerts_follow_the_article() -> None:
    """Below 4.0 for 5 minutes with 3 calls, hysteresis to 4.1 through the alert's own ALERTS
    series; below 3.6 is critical. The e2e test runs these expressions with scaled durations only."""
    by_name = {r.get("alert") or r.get("record"): r for r in rules()}
    low, poor = by_name["MosbridgeTenantMOSLow"], by_name["MosbridgeTenantMOSPoor"]
    assert low["for"] == poor["for"] == "5m"
    for rule, threshold, release in ((low, "4.0", "4.1"), (poor, "3.6", "3.7")):
        expr = " ".join(rule["expr"].split())
        assert (f"tenant:mosbridge_call_mos:mean5m < {threshold} and on (tenant) "
                "tenant:mosbridge_calls:increase5m >= 3") in expr
        assert (f'tenant:mosbridge_call_mos:mean5m < {release} and on (tenant) '
                f'ALERTS{{alertname="{rule["alert"]}", alertstate="firing"}}') in expr
        assert {"summary", "description", "runbook", "dashboard"} <= set(rule["annotations"])
        assert "{{ $labels.tenant }}" in rule["annotations"]["summary"]
    assert low["labels"]["severity"] == "warning" and poor["labels"]["severity"] == "critical"
    assert "increase(mosbridge_call_mos_sum[5m])" in by_name["tenant:mosbridge_call_mos:mean5m"]["expr"]


def test_event_loop_lag_alert_reads_the_lag_histogram_per_pod() -> None:
    """p99 of the lag over 5 minutes, per pod (every target label kept, like MosbridgeDeadlineMisses),
    above 20 ms for 10 minutes; 20 ms is a bucket bound, so the quantile crosses it exactly there."""
    doc = yaml.safe_load(RULES.read_text())
    fleet = next(g for g in doc["groups"] if g["name"] == "mosbridge-fleet")
    by_name = {r.get("alert"): r for r in fleet["rules"]}
    lag, misses = by_name["MosbridgeEventLoopLag"], by_name["MosbridgeDeadlineMisses"]
    assert " ".join(lag["expr"].split()) == (
        "histogram_quantile(0.99, rate(mosbridge_event_loop_lag_seconds_bucket[5m])) > 0.02")
    assert 0.02 in LOOP_LAG_S_BUCKETS
    assert SATURATED_P99_MS == 20.0  # a report calls its bridge saturated where this alert fires
    assert "le" in exported()["mosbridge_event_loop_lag_seconds_bucket"][0]
    assert lag["for"] == misses["for"] == "10m"
    assert lag["labels"] == misses["labels"] == {"severity": "warning"}
    assert set(lag["annotations"]) == set(misses["annotations"]) == {"summary", "description", "runbook",
                                                                      "dashboard"}
    assert "{{ $labels.instance }}" in lag["annotations"]["summary"]
    assert lag["annotations"]["runbook"] == misses["annotations"]["runbook"]
    assert lag["annotations"]["dashboard"].endswith("event loop lag p99 by pod")


def test_event_loop_lag_unit_test_feeds_the_exported_buckets() -> None:
    """The promtool cases for the lag alert use the bucket bounds the bridge really exports (le="1.0",
    not "1"), so they exercise the quantile the alert computes in production."""
    exported_les = {labels["le"] for labels in exported()["mosbridge_event_loop_lag_seconds_bucket"]}
    assert exported_les == {str(float(b)) for b in LOOP_LAG_S_BUCKETS} | {"+Inf"}
    doc = yaml.safe_load(RULE_TESTS.read_text())
    inputs = [s["series"] for t in doc["tests"] for s in t.get("input_series", [])
              if "mosbridge_event_loop_lag_seconds" in s["series"]]
    assert inputs
    per_pod: dict[str, set[str]] = {}
    for series in inputs:
        m = re.fullmatch(r'mosbridge_event_loop_lag_seconds_bucket\{(.*)\}', series)
        assert m, series
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        per_pod.setdefault(labels["instance"], set()).add(labels["le"])
    assert len(per_pod) >= 2
    assert all(les == exported_les for les in per_pod.values()), per_pod
    alerts = {a["alertname"] for t in doc["tests"] for a in t.get("alert_rule_test", [])}
    assert "MosbridgeEventLoopLag" in alerts


def test_exposition_passes_promtool_lint() -> None:
    """New metrics follow Prometheus naming; the one known complaint is the existing
    mosbridge_call_jitter_ms (a dashboard reads that name, so it stays)."""
    m = BridgeMetrics()
    m.call_ended(stored({"tenant": "acme", "mos": 4.0, "end_reason": "stop", "inbound": {"jitter_ms": 1.0}}))
    r = run_promtool("check", "metrics", stdin=m.exposition().decode())
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert all(line.startswith("mosbridge_call_jitter_ms") for line in complaints), complaints
