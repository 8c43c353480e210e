"""Tenant analytics over the report store: rolling MOS windows, chart series, plan-level views.

Blocking functions of a :class:`~bridge.ops.store.ReportStore` and the current wall-clock time (Unix
seconds), run on the store thread; the arithmetic is :mod:`quality.rolling`'s. Calls count in a
window by the time they *ended*, when their MOS became known. Calls without a tenant are grouped
under ``unknown``, as in the metrics.

A tenant's plan sets how much it may see of its own calls (``shared/seed``): ``starter`` gets a
good / fair / poor label per call, ``growth`` a weekly aggregate, ``scale`` every call's report.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.core.isotime import iso_utc
from bridge.ops.store import AlertRecord, MosPoint, Plan, ReportStore
from quality.bands import label
from quality.rolling import bucketize, summarize

WINDOWS: tuple[tuple[str, float], ...] = (("5m", 300.0), ("1h", 3600.0), ("24h", 86400.0))
DAY_S = 86400.0
WEEKS = 8  # weekly aggregates the growth plan sees
MAX_SERIES_BUCKETS = 2000


def plan_of(store: ReportStore, tenant: str, default_plan: Plan) -> Plan:
    record = store.tenant(tenant)
    return record.plan if record is not None else default_plan


def _by_tenant(points: list[MosPoint]) -> dict[str, list[MosPoint]]:
    groups: dict[str, list[MosPoint]] = defaultdict(list)
    for p in points:
        groups[p.tenant].append(p)
    return groups


def _windows(points: list[MosPoint], now: float) -> dict[str, Any]:
    return {name: summarize([p.mos for p in points if p.ended_s > now - span]).to_dict() for name, span in WINDOWS}


def _alert(record: AlertRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {"id": record.id, "state": record.state, "fired_at": record.fired_at, "mos_at_fire": record.mos_at_fire,
            "threshold": record.threshold, "calls": record.calls}


def _summary(tenant: str, plan: Plan, points: list[MosPoint], now: float, last_call_at: str | None,
             firing: AlertRecord | None) -> dict[str, Any]:
    return {"tenant": tenant, "plan": plan, "last_call_at": last_call_at, "windows": _windows(points, now),
            "alert": _alert(firing)}


def tenant_summaries(store: ReportStore, now: float, default_plan: Plan) -> list[dict[str, Any]]:
    """Every tenant with a call in the last 24 h, a plan on record or a firing alert: its
    rolling windows (5 min, 1 h, 24 h), plan, latest call and firing alert; worst 5-min mean first."""
    groups = _by_tenant(store.mos_points(iso_utc(now - DAY_S), iso_utc(now)))
    plans = {t.tenant: t.plan for t in store.tenants()}
    firing = {a.tenant: a for a in store.firing_alerts()}
    last = store.last_calls()
    names = set(groups) | set(plans) | set(firing)
    out = [_summary(t, plans.get(t, default_plan), groups.get(t, []), now, last.get(t), firing.get(t))
           for t in names]

    def order(s: dict[str, Any]) -> tuple[int, float, str]:
        mean = s["windows"]["5m"]["mean"]
        return (0 if s["alert"] else 1, mean if mean is not None else 9.0, s["tenant"])

    return sorted(out, key=order)


def tenant_detail(store: ReportStore, tenant: str, now: float, default_plan: Plan, span_s: float = DAY_S,
                  bucket_s: float = 300.0) -> dict[str, Any] | None:
    """One tenant's summary plus a chart series of ``span_s`` in ``bucket_s`` buckets; None for
    a tenant the store has never seen."""
    span_s = min(max(span_s, 60.0), 31 * DAY_S)
    bucket_s = max(bucket_s, span_s / MAX_SERIES_BUCKETS)
    points = store.mos_points(iso_utc(now - span_s), iso_utc(now), tenant)
    record = store.tenant(tenant)
    last = store.last_calls(tenant).get(tenant)
    firing = next((a for a in store.firing_alerts() if a.tenant == tenant), None)
    if not points and record is None and last is None and firing is None:
        return None
    out = _summary(tenant, record.plan if record else default_plan, points, now, last, firing)
    out["series"] = bucketize([(p.ended_s, p.mos) for p in points], now - span_s, now, bucket_s).to_dict()
    return out


def weekly(points: list[MosPoint], now: float, weeks: int = WEEKS) -> list[dict[str, Any]]:
    """ISO weeks (Monday 00:00 UTC), newest first, each with the summary of its calls."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    out = []
    for k in range(weeks):
        start = monday - timedelta(weeks=k)
        lo, hi = start.timestamp(), (start + timedelta(weeks=1)).timestamp()
        year, week, _ = start.isocalendar()
        summary = summarize([p.mos for p in points if lo <= p.ended_s < hi]).to_dict()
        out.append({"week": f"{year}-W{week:02d}", "start": iso_utc(lo), **summary})
    return out


def tenant_view(store: ReportStore, tenant: str, now: float, default_plan: Plan,
                limit: int = 50) -> dict[str, Any]:
    """What a tenant may see of its own calls, by plan (see the module docstring)."""
    plan = plan_of(store, tenant, default_plan)
    view: dict[str, Any] = {"tenant": tenant, "plan": plan}
    if plan == "starter":
        rows = store.list(tenant=tenant, limit=limit)
        view["calls"] = [{"call_sid": r["call_sid"], "started_at": r["started_at"], "ended_at": r["ended_at"],
                          "label": label(r["mos"]).value if r["mos"] is not None else None} for r in rows]
        return view
    since = now - (WEEKS * 7 + 7) * DAY_S
    view["weeks"] = weekly(store.mos_points(iso_utc(since), iso_utc(now), tenant), now)
    if plan == "scale":
        view["calls"] = store.list(tenant=tenant, limit=limit)
    return view

