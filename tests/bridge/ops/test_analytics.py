"""Tenant analytics and the in-process alert evaluator over real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bridge.core.isotime import epoch_of, iso_utc
from bridge.ops.alerts import AlertEvaluator
from bridge.ops.analytics import tenant_detail, tenant_summaries, tenant_view, weekly
from bridge.ops.store import MosPoint, ReportStore, open_store, token_hash
from quality.alerting import AlertRule
from tests.bridge.ops.test_store import make_report

NOW = epoch_of("2026-11-27T12:00:00.000Z")  # a Friday


def call(store: ReportStore, sid: str, tenant: str | None, ago_s: float, mos: float, **extra: Any) -> None:
    store.write(make_report(sid, tenant=tenant, started_at=iso_utc(NOW - ago_s - 30),
                            ended_at=iso_utc(NOW - ago_s), mos=mos, **extra))


@pytest.fixture
def store(store_url: str) -> Any:
    s = open_store(store_url)
    yield s
    s.close()


def test_rolling_windows_count_calls_by_end_time(store: ReportStore) -> None:
    call(store, "CA1", "acme", 60, 3.0)
    call(store, "CA2", "acme", 1000, 4.2)
    call(store, "CA3", "acme", 50_000, 4.4)
    call(store, "CA4", "acme", 90_000, 1.0)  # older than 24 h
    call(store, "CA5", None, 30, 4.1)
    store.set_tenant("globex", "growth", None, iso_utc(NOW))
    by_name = {s["tenant"]: s for s in tenant_summaries(store, NOW, "scale")}
    assert set(by_name) == {"acme", "unknown", "globex"}
    w = by_name["acme"]["windows"]
    assert (w["5m"]["calls"], w["5m"]["mean"]) == (1, 3.0)
    assert (w["1h"]["calls"], w["1h"]["mean"]) == (2, pytest.approx(3.6))
    assert w["24h"]["calls"] == 3 and w["24h"]["bands"] == {"excellent": 1, "good": 1, "fair": 0, "poor": 1}
    assert w["24h"]["p50"] == 4.2 and w["24h"]["min"] == 3.0
    assert by_name["acme"]["last_call_at"] == iso_utc(NOW - 60)
    assert by_name["acme"]["plan"] == "scale" and by_name["globex"]["plan"] == "growth"
    assert by_name["globex"]["windows"]["24h"] == {"calls": 0, "mean": None, "p10": None, "p50": None, "p90": None,
                                                   "min": None, "bands": {"excellent": 0, "good": 0, "fair": 0,
                                                                          "poor": 0}}
    assert by_name["unknown"]["windows"]["5m"]["mean"] == 4.1


def test_worst_and_alerting_tenants_come_first(store: ReportStore) -> None:
    call(store, "CA1", "good", 60, 4.4)
    call(store, "CA2", "bad", 60, 3.0)
    call(store, "CA3", "firing", 60, 4.3)
    store.open_alert("firing", "tenant_mos_low", iso_utc(NOW - 10), 3.5, 4, 4.0)
    order = [s["tenant"] for s in tenant_summaries(store, NOW, "scale")]
    assert order == ["firing", "bad", "good"]


def test_tenant_detail_series_and_unknown_tenant(store: ReportStore) -> None:
    for i, (ago, mos) in enumerate([(100, 4.0), (200, 3.0), (4000, 4.4)]):
        call(store, f"CA{i}", "acme", ago, mos)
    detail = tenant_detail(store, "acme", NOW, "scale", span_s=7200, bucket_s=600)
    assert detail is not None
    series = detail["series"]
    assert series["bucket_s"] == 600 and len(series["t"]) == 12  # 2 h in 10-min buckets, NOW on a boundary
    assert sum(series["calls"]) == 3
    last = series["calls"].index(2)
    assert series["mean"][last] == pytest.approx(3.5)
    assert tenant_detail(store, "nobody", NOW, "scale") is None


def test_weekly_buckets_are_iso_weeks_newest_first() -> None:
    points = [MosPoint("a", epoch_of("2026-11-23T00:00:00.000Z"), 4.0),  # Monday: this week
              MosPoint("a", epoch_of("2026-11-22T23:59:59.000Z"), 3.0)]  # Sunday: last week
    weeks = weekly(points, NOW, weeks=3)
    assert [w["week"] for w in weeks] == ["2026-W48", "2026-W47", "2026-W46"]
    assert weeks[0]["start"] == "2026-11-23T00:00:00.000Z"
    assert [w["calls"] for w in weeks] == [1, 1, 0] and weeks[1]["mean"] == 3.0


def test_each_plan_sees_its_granularity(store: ReportStore) -> None:
    for t in ("s", "g", "x"):
        call(store, f"CA-{t}1", t, 60, 4.35)
        call(store, f"CA-{t}2", t, 120, 3.7)
        call(store, f"CA-{t}3", t, 180, 2.9)
    store.set_tenant("s", "starter", None, iso_utc(NOW))
    store.set_tenant("g", "growth", None, iso_utc(NOW))
    starter = tenant_view(store, "s", NOW, "scale")
    assert starter["plan"] == "starter" and "weeks" not in starter
    assert [c["label"] for c in starter["calls"]] == ["good", "fair", "poor"]
    assert all(set(c) == {"call_sid", "started_at", "ended_at", "label"} for c in starter["calls"])
    growth = tenant_view(store, "g", NOW, "scale")
    assert "calls" not in growth and growth["weeks"][0]["calls"] == 3
    assert growth["weeks"][0]["mean"] == pytest.approx((4.35 + 3.7 + 2.9) / 3)
    scale = tenant_view(store, "x", NOW, "scale")
    assert [c["call_sid"] for c in scale["calls"]] == ["CA-x1", "CA-x2", "CA-x3"] and scale["calls"][0]["mos"] == 4.35


RULE = AlertRule(threshold=4.0, window_s=300.0, for_s=300.0, hysteresis=0.1, min_calls=3)


def test_evaluator_fires_once_survives_a_restart_and_resolves_once(store: ReportStore) -> None:
    ev = AlertEvaluator(RULE)
    fired = []
    for k in range(0, 25):  # a low call ends every 15 s, and the rule is evaluated right after
        at = NOW + 15 * k
        call(store, f"CA-low{k}", "acme", NOW - at, 3.2)
        call(store, f"CA-ok{k}", "globex", NOW - at, 4.4)
        fired += [(at - NOW, n) for n in ev.evaluate(store, at).notices]
    # three calls (the minimum) by t = 30 s: pending from then, firing 300 s later
    [(when, notice)] = fired
    assert when == 330
    assert (notice.status, notice.tenant, notice.calls) == ("firing", "acme", 20)
    assert notice.mos == pytest.approx(3.2) and "below 4" in notice.summary
    [row] = store.alerts(tenant="acme")
    assert row.state == "firing" and row.id == notice.id and store.alerts(tenant="globex") == []

    again = AlertEvaluator(RULE)  # a restarted process
    later = NOW + 15 * 25
    assert again.evaluate(store, later).notices == [] and again.evaluate(store, later).firing == {"acme"}
    for i in range(17):
        call(store, f"CA-mid{i}", "acme", NOW - later, 4.9)  # window (75 s, 375 s]: (19·3.2 + 17·4.9)/36 = 4.00
    assert again.evaluate(store, later).notices == []
    for i in range(4):
        call(store, f"CA-good{i}", "acme", NOW - later, 4.9)  # (19·3.2 + 21·4.9)/40 = 4.09: not yet 4.1
    assert again.evaluate(store, later).notices == []
    for i in range(4):
        call(store, f"CA-better{i}", "acme", NOW - later, 4.9)  # (19·3.2 + 25·4.9)/44 = 4.17
    [resolved] = again.evaluate(store, later).notices
    assert resolved.status == "resolved" and resolved.id == notice.id and resolved.resolved_at == iso_utc(later)
    assert store.alerts(tenant="acme")[0].state == "resolved"
    assert again.evaluate(store, later + 15).notices == []


def test_only_the_leader_evaluates_on_postgres(postgres_url: str) -> None:
    a, b = open_store(postgres_url), open_store(postgres_url)
    for i in range(3):
        call(a, f"CA{i}", "acme", 10, 2.0)
    rule = AlertRule(for_s=0.0)
    first, second = AlertEvaluator(rule).evaluate(a, NOW), AlertEvaluator(rule).evaluate(b, NOW)
    assert first.leader and not second.leader
    assert [n.status for n in first.notices] == ["firing"] and second.notices == []
    a.close()  # the leader dies; the other instance takes over and sees the alert already firing
    # PostgreSQL frees the lock when the dead session's backend has exited, a moment after the
    # disconnect: the next evaluations take over then
    deadline = time.monotonic() + 5.0
    while not (took_over := AlertEvaluator(rule).evaluate(b, NOW + 15)).leader and time.monotonic() < deadline:
        time.sleep(0.05)
    assert took_over.leader and took_over.notices == [] and took_over.firing == {"acme"}
    b.close()


def test_a_tenant_token_is_stored_only_as_its_hash(store: ReportStore) -> None:
    rec = store.set_tenant("acme", "scale", token_hash("secret-token"), iso_utc(NOW))
    assert rec.token_sha256 is not None and "secret-token" not in rec.token_sha256
