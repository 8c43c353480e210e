"""The JSON API and the in-process alert, on a live bridge over loopback with real calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.core.isotime import iso_utc
from bridge.ops.store import open_store
from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live.test_metrics import samples
from tests.bridge.live_rig import gilbert_drops, live_bridge, schedule, silence_frames
from tests.bridge.ops.test_store import make_report
from tests.postgres import PgServer
from tests.webhook_server import Received

ADMIN = "admin-token-for-tests"


async def get(http: aiohttp.ClientSession, url: str, token: str | None = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as r:
        return r.status, await r.json()


async def test_admin_token_guards_every_route_and_the_api_reads_the_store(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, admin_token=ADMIN, alerts=False) as live, aiohttp.ClientSession() as http:
        store = open_store(live.settings.database_url)
        now = live.bridge.clock()
        for i, mos in enumerate([4.4, 3.1, 3.9]):
            store.write(make_report(f"CA-api{i}", tenant="acme", started_at=iso_utc(now - 100 + i),
                                    ended_at=iso_utc(now - 60 + i), mos=mos))
        store.close()
        base = live.base + "/api/v1"
        for path in ("/tenants", "/tenants/acme", "/calls", "/calls/CA-api0", "/alerts", "/tenants/acme/quality"):
            assert (await get(http, base + path, token=None))[0] == 401
            assert (await get(http, base + path, token="wrong"))[0] == 401
        status, body = await get(http, base + "/tenants")
        assert status == 200
        [acme] = body["tenants"]
        assert acme["windows"]["5m"]["calls"] == 3 and acme["windows"]["5m"]["mean"] == pytest.approx(3.8)
        assert acme["windows"]["5m"]["bands"] == {"excellent": 1, "good": 0, "fair": 1, "poor": 1}
        status, detail = await get(http, base + "/tenants/acme?span_s=3600&bucket_s=60")
        assert status == 200 and detail["series"]["bucket_s"] == 60 and sum(detail["series"]["calls"]) == 3
        assert (await get(http, base + "/tenants/nobody"))[0] == 404
        assert (await get(http, base + "/tenants/acme?span_s=lots"))[0] == 400
        status, calls = await get(http, base + "/calls?tenant=acme&limit=2")
        assert [c["call_sid"] for c in calls["calls"]] == ["CA-api2", "CA-api1"]
        status, report = await get(http, base + "/calls/CA-api1")
        assert status == 200 and report["mos"] == 3.1 and report["inbound"]["contributions"]
        assert (await get(http, base + "/calls/CA-none"))[0] == 404
        assert (await get(http, base + "/alerts?state=bogus"))[0] == 400
        cookie = {"mosbridge_token": ADMIN}
        async with http.get(base + "/calls", cookies=cookie) as r:
            assert r.status == 200  # the dashboard's cookie works as well as the header


async def test_plans_and_tenant_tokens(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, admin_token=ADMIN, alerts=False, default_plan="starter") as live, \
            aiohttp.ClientSession() as http:
        store = open_store(live.settings.database_url)
        now = live.bridge.clock()
        for tenant in ("acme", "globex"):
            store.write(make_report(f"CA-{tenant}", tenant=tenant, ended_at=iso_utc(now - 30), mos=3.7))
        store.close()
        base = live.base + "/api/v1/tenants"
        admin = {"Authorization": f"Bearer {ADMIN}"}
        async with http.put(base + "/acme", json={"plan": "growth", "rotate_token": True}, headers=admin) as r:
            assert r.status == 200
            made = await r.json()
        assert made["plan"] == "growth" and made["has_token"] and len(made["token"]) > 30
        token = made["token"]
        async with http.put(base + "/acme", json={"plan": "gold"}, headers=admin) as r:
            assert r.status == 400
        async with http.put(base + "/acme", json={"plan": "scale"}) as r:
            assert r.status == 401

        status, view = await get(http, base + "/acme/quality", token=token)
        assert status == 200 and view["plan"] == "growth" and "calls" not in view and view["weeks"][0]["calls"] == 1
        assert (await get(http, base + "/globex/quality", token=token))[0] == 401  # not its tenant
        assert (await get(http, base + "/acme/calls/CA-acme", token=token))[0] == 403  # growth: no per-call
        status, starter = await get(http, base + "/globex/quality")
        assert starter["plan"] == "starter"
        assert starter["calls"] == [{"call_sid": "CA-globex", "started_at": "2026-05-01T10:00:00.000Z",
                                     "ended_at": starter["calls"][0]["ended_at"], "label": "fair"}]
        async with http.put(base + "/acme", json={"plan": "scale"}, headers=admin) as r:
            assert (await r.json())["has_token"]  # the token survives a plan change
        status, report = await get(http, base + "/acme/calls/CA-acme", token=token)
        assert status == 200 and report["call_sid"] == "CA-acme"
        assert (await get(http, base + "/acme/calls/CA-globex", token=token))[0] == 404  # another tenant's call


async def test_no_admin_token_means_loopback_only(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, alerts=False) as live, aiohttp.ClientSession() as http:
        status, body = await get(http, live.base + "/api/v1/calls", token=None)
        assert status == 200 and body == {"calls": []}


async def test_store_outage_answers_503_and_heals(tmp_path: Path, postgres_server: PgServer, postgres_url: str) -> None:
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(postgres_server.address)
    url = postgres_server.via(postgres_url, proxy.port)
    try:
        async with live_bridge(tmp_path, admin_token=ADMIN, alerts=False, database_url=url,
                               spool_path=str(tmp_path / "spool.jsonl")) as live, aiohttp.ClientSession() as http:
            assert (await get(http, live.base + "/api/v1/calls"))[0] == 200
            proxy.cut()
            status, body = await get(http, live.base + "/api/v1/calls")
            assert status == 503 and "unavailable" in body["error"]
            proxy.restore()
            assert (await get(http, live.base + "/api/v1/calls"))[0] == 200
    finally:
        proxy.cut()


async def test_degraded_calls_fire_the_alert_once_with_webhook_log_store_and_metric(
        tmp_path: Path, hook: tuple[str, Received], caplog: pytest.LogCaptureFixture) -> None:
    url, received = hook
    async with live_bridge(tmp_path, validate_twilio_signature=False, admin_token=ADMIN, alert_for_s=0.5,
                           alert_window_s=60.0, alert_min_calls=3, alert_eval_interval_s=0.2,
                           alert_webhook_url=url) as live, aiohttp.ClientSession() as http:
        frames = silence_frames(1.5)

        async def one(i: int, tenant: str, drops: set[int]) -> None:
            caller = SimulatedCaller(live.media_url, stream_sid=f"MZ{tenant}{i}", call_sid=f"CA-{tenant}-{i}",
                                     params={"tenant": tenant})
            await caller.run(schedule(frames, drop=drops), hangup_after_s=1.6, session=http)

        lossy = [gilbert_drops(len(frames), 0.15, 0.5, seed=i) for i in range(3)]
        await asyncio.gather(*(one(i, "acme", lossy[i]) for i in range(3)), *(one(i, "calm", set()) for i in range(3)))
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.6)  # further evaluations must not fire it again
        _, alerts = await get(http, live.base + "/api/v1/alerts")
        async with http.get(live.base + "/metrics") as r:
            metrics = samples(await r.text())
    [(_, content_type, body)] = received
    assert content_type == "application/json"
    notice = json.loads(body)
    assert (notice["status"], notice["tenant"], notice["calls"], notice["alert"]) == ("firing", "acme", 3,
                                                                                       "tenant_mos_low")
    assert notice["mos"] < 3.6
    [row] = alerts["alerts"]
    assert (row["tenant"], row["state"], row["id"]) == ("acme", "firing", notice["id"])
    assert metrics[("mosbridge_alert_firing", (("tenant", "acme"),))] == 1
    assert any("ALERT FIRING tenant acme" in r.getMessage() for r in caplog.records)
