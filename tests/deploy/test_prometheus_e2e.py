"""End to end: a real bridge and Realtime stand-in on loopback, scraped by a real Prometheus that
runs the shipped rule file at a 30x faster clock (every duration divided by 30: the 5-minute
window is 10 s, ``for: 5m`` is 10 s; the expressions are untouched). Simulated callers of tenant
"acme" lose 12 % of their frames (MOS about 3.1) and must raise MosbridgeTenantMOSLow; the clean
calls of tenant "healthy" (about 4.35) must not.

The bridge models the caller's edge as G.711 with concealment (MOSBRIDGE_EDGE_CODEC=g711-plc): on
a shared 2-core CI machine a scheduling hiccup can make the jitter buffer discard a frame or two
of a clean 2.5-second call, which without concealment costs the call 0.5 to 1 MOS.

The prometheus binary is required (CI installs Debian's with scripts/bootstrap.sh --dev): without it
this test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.loadtest.run import LoadOptions, LoadResult, Processes, run_load

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "mosbridge-rules.yml"
SPEEDUP = 30
UNIT_S = {"s": 1, "m": 60, "h": 3600}
RANGE = re.compile(r"\[(\d+)([smh])\]")
FOR = re.compile(r"^(\s*(?:for|keep_firing_for):\s*)(\d+)([smh])\s*$", re.MULTILINE)
FIRE_WITHIN_S = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prometheus_binary() -> str:
    path = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if path is None:
        pytest.fail("prometheus not found: install the Debian package prometheus (scripts/bootstrap.sh --dev does)")
    return path


def _seconds(n: str, unit: str, factor: int) -> str:
    return f"{max(1, math.ceil(int(n) * UNIT_S[unit] / factor))}s"


def scale_durations(text: str, factor: int) -> str:
    """The rule file with every range selector, ``for`` and ``keep_firing_for`` divided by factor."""
    text = RANGE.sub(lambda m: f"[{_seconds(m[1], m[2], factor)}]", text)
    return FOR.sub(lambda m: m[1] + _seconds(m[2], m[3], factor), text)


def test_scaling_touches_durations_only() -> None:
    original = RULES.read_text()
    scaled = scale_durations(original, SPEEDUP)
    assert "[10s]" in scaled and "[120s]" in scaled and "[20s]" in scaled
    assert "        for: 10s\n        keep_firing_for: 10s\n" in scaled
    assert not re.search(r"\[\d+[mh]\]", scaled) and not re.search(r"(for|keep_firing_for): \d+[mh]\b", scaled)
    strip = re.compile(r"\[\d+[smh]\]|(?<=for: )\d+[smh]")
    assert strip.sub("D", scaled) == strip.sub("D", original)


async def _api(http: aiohttp.ClientSession, base: str, path: str, **params: str) -> Any:
    async with http.get(base + path, params=params, timeout=aiohttp.ClientTimeout(total=5)) as r:
        body = await r.json()
        assert body["status"] == "success", body
        return body["data"]


async def _query(http: aiohttp.ClientSession, base: str, expr: str) -> dict[str, float]:
    """An instant query, as {tenant (or ""): value}."""
    data = await _api(http, base, "/api/v1/query", query=expr)
    return {s["metric"].get("tenant", ""): float(s["value"][1]) for s in data["result"]}


async def _wait_ready(http: aiohttp.ClientSession, base: str, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(base + "/-/ready") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError("prometheus did not become ready")


async def _waves(target: str, tenant: str, loss_pct: float, seed: int, stop: asyncio.Event) -> list[LoadResult]:
    """Waves of short calls (all of a wave end within a second), until stop is set. Seeds differ
    per wave and tenant, which also keeps the harness's call SIDs apart."""
    results = []
    wave = 0
    while not stop.is_set():
        opts = LoadOptions(calls=3, ramp_s=0.3, duration_s=3.0, target=target, tenant=tenant, loss_pct=loss_pct,
                           seed=seed + 2 * wave, bridge_cpu=None)
        results.append(await run_load(opts))
        wave += 1
    return results


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_low_mos_tenant_fires_in_prometheus(tmp_path: Path) -> None:
    binary = prometheus_binary()
    started = time.monotonic()
    procs = Processes(LoadOptions(bridge_cpu=None, bridge_env={
        "MOSBRIDGE_ALERTS": "0", "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0", "MOSBRIDGE_EDGE_CODEC": "g711-plc"}),
        tmp_path)
    prom_port = free_port()
    base = f"http://127.0.0.1:{prom_port}"
    (tmp_path / "rules.yml").write_text(scale_durations(RULES.read_text(), SPEEDUP))
    log_path = tmp_path / "prometheus.log"
    prom: asyncio.subprocess.Process | None = None
    stop = asyncio.Event()
    drivers: list[asyncio.Task[list[LoadResult]]] = []
    seen: list[dict[str, Any]] = []
    firing: dict[str, Any] | None = None
    means: dict[str, float] = {}
    healthy_calls: dict[str, float] = {}
    healthy_typical: dict[str, float] = {}
    rule_groups: list[dict[str, Any]] = []
    done: set[asyncio.Task[list[LoadResult]]] = set()
    try:
        await procs.start()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "rule_files: [rules.yml]\n"
            "scrape_configs:\n  - job_name: mosbridge\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{procs.bridge_port}']}}]\n")
        with log_path.open("wb") as log:
            prom = await asyncio.create_subprocess_exec(
                binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
                stdout=subprocess.DEVNULL, stderr=log)
        async with aiohttp.ClientSession() as http:
            await _wait_ready(http, base, prom)
            target = f"ws://127.0.0.1:{procs.bridge_port}/media"
            drivers = [asyncio.create_task(_waves(target, "acme", 12.0, 1, stop)),
                       asyncio.create_task(_waves(target, "healthy", 0.0, 2, stop))]
            deadline = time.monotonic() + FIRE_WITHIN_S
            while time.monotonic() < deadline and firing is None:
                await asyncio.sleep(0.5)
                assert not any(d.done() and d.exception() for d in drivers), [d.exception() for d in drivers]
                alerts = (await _api(http, base, "/api/v1/alerts"))["alerts"]
                seen += alerts
                firing = next((a for a in alerts if a["labels"]["alertname"] == "MosbridgeTenantMOSLow"
                               and a["labels"].get("tenant") == "acme" and a["state"] == "firing"), None)
            means = await _query(http, base, "tenant:mosbridge_call_mos:mean5m")
            healthy_calls = await _query(
                http, base, 'max_over_time(tenant:mosbridge_calls:increase5m{tenant="healthy"}[5m])')
            healthy_typical = await _query(
                http, base, 'quantile_over_time(0.5, tenant:mosbridge_call_mos:mean5m{tenant="healthy"}[5m])')
            rule_groups = (await _api(http, base, "/api/v1/rules"))["groups"]
            stop.set()
            done, _ = await asyncio.wait(drivers, timeout=8)
    finally:
        stop.set()
        for d in drivers:
            d.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
        if prom is not None:
            await _end(prom)
        await procs.stop()

    diagnostics = (f"alerts seen: {[(a['labels'], a['state'], a['value']) for a in seen[-6:]]}; means now: {means}; "
                   f"healthy pending: {[a['value'] for a in seen if a['labels'].get('tenant') == 'healthy']}; "
                   f"prometheus log: {log_path.read_text()[-2000:]}")
    assert firing is not None, "MosbridgeTenantMOSLow did not fire for acme; " + diagnostics
    assert float(firing["value"]) < 4.0, firing
    assert any(a["labels"]["alertname"] == "MosbridgeTenantMOSLow" and a["labels"].get("tenant") == "acme"
               and a["state"] == "pending" for a in seen), "it fired without going through `for`"
    assert firing["labels"]["severity"] == "warning"
    assert "acme" in firing["annotations"]["summary"]
    assert not [a for a in seen if a["labels"].get("tenant") == "healthy" and a["state"] == "firing"], diagnostics
    assert healthy_calls.get("healthy", 0.0) >= 3, f"healthy had too few calls to be judged: {healthy_calls}"
    assert healthy_typical.get("healthy", 0.0) >= 4.1, healthy_typical
    for group in rule_groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
    results = [r for d in done for r in d.result()]
    assert results and not any(r.calls["failed"] for r in results)
    assert time.monotonic() - started < 60
