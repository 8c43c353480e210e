"""``serve --workers 2`` as real processes on loopback: calls on both workers, /metrics summed across
them, a SIGKILLed worker restarted without harm to the other's call, and SIGTERM draining every call."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bridge.live.settings import Settings
from bridge.live.supervisor import worker_settings
from bridge.live.worker import Worker
from bridge.ops.store import open_store
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from bridge.stand_ins.twilio_caller import SimulatedCaller
from tests.bridge.live_rig import schedule, speech_frames

ROOT = Path(__file__).resolve().parents[3]
SUPERVISOR_LINE = re.compile(r"supervisor \(pid (\d+)\) listening on 127\.0\.0\.1:(\d+) with 2 workers")
WORKER_LINE = re.compile(r"mosbridge worker (\d) \(pid (\d+)\) listening on")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    db: str

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> dict[int, int]:
        """Worker index -> pid of its latest start, from the log."""
        return {int(i): int(pid) for i, pid in WORKER_LINE.findall(self.text())}

    async def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        async with asyncio.timeout(timeout):
            while (m := re.search(pattern, self.text())) is None:
                assert self.proc.poll() is None, self.text()
                await asyncio.sleep(0.05)
        return m


@contextlib.asynccontextmanager
async def supervised(tmp_path: Path, **settings: str) -> AsyncIterator[Running]:
    async with FakeRealtimeServer(FakeRealtimeConfig(speed=8.0)) as fake:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MOSBRIDGE_", "PROMETHEUS_"))}
        db = f"sqlite:///{tmp_path / 'calls.db'}"
        env |= {"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test", "MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE": "0",
                "MOSBRIDGE_OPENAI_URL": fake.url, "MOSBRIDGE_DATABASE_URL": db, "MOSBRIDGE_HOST": "127.0.0.1",
                "MOSBRIDGE_INTERVAL_S": "1", "MOSBRIDGE_PING_INTERVAL_S": "0.25", "MOSBRIDGE_PSEUDONYM_KEY": "k",
                "MOSBRIDGE_DRAIN_TIMEOUT_S": "5", "MOSBRIDGE_CAPTURE_DIR": str(tmp_path / "captures")}
        env |= {f"MOSBRIDGE_{k.upper()}": v for k, v in settings.items()}
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--workers", "2", "--port", "0"],
                                    env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            running = Running(proc, 0, log, db)
            running.port = int((await running.wait_for(SUPERVISOR_LINE.pattern)).group(2))
            async with asyncio.timeout(30):
                while len(running.workers()) < 2:
                    assert proc.poll() is None, running.text()
                    await asyncio.sleep(0.05)
            yield running
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    for pid in running.workers().values():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)


async def call(live: Running, http: aiohttp.ClientSession, sid: str, seconds: float) -> None:
    frames = speech_frames(seconds)
    caller = SimulatedCaller(live.media_url, stream_sid=f"MZ{sid}", call_sid=sid, params={"tenant": "t"})
    await caller.run(schedule(frames), hangup_after_s=seconds + 0.2, session=http)


async def per_worker_stats(live: Running, tries: int = 60) -> dict[int, dict[str, Any]]:
    """/stats of each worker (each request on a new connection lands on a worker picked by hash)."""
    seen: dict[int, dict[str, Any]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(tries):
            async with http.get(f"http://127.0.0.1:{live.port}/stats") as r:
                body = await r.json()
            seen[body["worker"]["index"]] = body
            if len(seen) == 2:
                break
            await asyncio.sleep(0.02)
    return seen


async def metric(live: Running, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{live.port}/metrics") as r:
        text = await r.text()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name)


def stored(live: Running) -> dict[str, dict[str, Any]]:
    store = open_store(live.db)
    try:
        return {r["call_sid"]: r for r in store.list(limit=1000)}
    finally:
        store.close()


async def wait_stored(live: Running, n: int, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(rows := stored(live)) < n:
            await asyncio.sleep(0.1)
    return rows


def test_workers_get_the_settings_with_secrets_the_bound_port_and_one_pseudonym_key() -> None:
    settings = Settings(openai_api_key="sk-x", port=0, workers=3, pseudonym_key=None)
    data = json.loads(worker_settings(settings, 4321))
    assert (data["openai_api_key"], data["port"], data["workers"]) == ("sk-x", 4321, 3)
    assert len(data["pseudonym_key"]) == 64
    again = Settings(**data)
    assert again.openai_api_key is not None and again.openai_api_key.get_secret_value() == "sk-x"
    kept = json.loads(worker_settings(Settings(pseudonym_key="mine"), 1))
    assert kept["pseudonym_key"] == "mine"


def test_worker_0_keeps_the_single_process_spool_the_others_get_their_own() -> None:
    spool = Path("/var/spool/reports.jsonl")
    assert Worker(0, 2).own_path(spool) == spool
    assert Worker(1, 2).own_path(spool) == Path("/var/spool/reports.jsonl.w1")
    assert Worker(0, 2).runs_alerts and not Worker(1, 2).runs_alerts


async def test_calls_spread_over_both_workers_and_metrics_add_up(tmp_path: Path) -> None:
    async with supervised(tmp_path) as live, aiohttp.ClientSession() as http:
        made = 0
        for _ in range(6):  # rounds of concurrent calls until both workers have taken some
            await asyncio.gather(*(call(live, http, f"CA-{made + i}", 0.6) for i in range(3)))
            made += 3
            async with asyncio.timeout(10):  # a call's handler ends a moment after its caller hangs up
                while len(stats := await per_worker_stats(live)) < 2 or \
                        sum(s["calls_ended"] for s in stats.values()) < made:
                    await asyncio.sleep(0.05)
            if all(s["calls_ended"] for s in stats.values()):
                break
        assert sorted(stats) == [0, 1], stats
        assert all(s["calls_ended"] >= 1 for s in stats.values()), stats
        assert sum(s["calls_ended"] for s in stats.values()) == made
        assert len({s["worker"]["pid"] for s in stats.values()}) == 2
        assert set(live.workers().values()) == {s["worker"]["pid"] for s in stats.values()}
        rows = await wait_stored(live, made)
        assert sorted(rows) == sorted(f"CA-{i}" for i in range(made))
        # Whichever worker answers the scrape, it counts every call.
        for _ in range(4):
            assert await metric(live, "mosbridge_calls_total") == made
            assert await metric(live, "mosbridge_call_mos_count") == made
            assert await metric(live, "mosbridge_calls_live") == 0
            assert await metric(live, "mosbridge_build_info") == 1  # livemax, not one per worker
        # Frame latency is counted in each worker and flushed to the shared files (each scrape a
        # worker answers, and each second): the scrape adds up what the workers' /stats counted.
        stats = await per_worker_stats(live)
        frames = sum(s[d]["frames"] for s in stats.values() for d in ("inbound", "outbound"))
        assert frames > 0 and all(s["inbound"]["frames"] for s in stats.values()), stats
        async with asyncio.timeout(5):
            while await metric(live, "mosbridge_bridge_latency_seconds_count") != frames:
                await asyncio.sleep(0.2)


async def test_new_connections_spread_over_the_workers_by_hash(tmp_path: Path) -> None:
    # SO_REUSEPORT picks a worker by a hash of the connection's address and port, so the worker
    # answering each of 40 new connections is a fair coin: fewer than 6 on one side has
    # probability 2 * P(Binomial(40, 1/2) <= 5) ~ 1.5e-6. A socket shared by the workers gave one
    # idle worker all 60 connections in a row (CI, 2026-12-03).
    async with supervised(tmp_path) as live, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        answered: list[int] = []
        for _ in range(40):
            async with http.get(f"http://127.0.0.1:{live.port}/stats") as r:
                answered.append((await r.json())["worker"]["index"])
        assert min(answered.count(0), answered.count(1)) >= 6, answered


async def test_a_killed_worker_is_restarted_and_the_other_call_completes(tmp_path: Path) -> None:
    async with supervised(tmp_path) as live, aiohttp.ClientSession() as http:
        survivor_call = asyncio.create_task(call(live, http, "CA-survives", 3.0))
        async with asyncio.timeout(10):
            while True:
                stats = await per_worker_stats(live)
                busy = [i for i, s in stats.items() if s["calls_live"] == 1]
                if len(stats) == 2 and busy:
                    break
                await asyncio.sleep(0.1)
        [serving] = busy
        victim = 1 - serving
        old = live.workers()
        os.kill(old[victim], signal.SIGKILL)
        await live.wait_for(rf"worker {victim} \(pid {old[victim]}\) killed by SIGKILL")
        await live.wait_for(rf"worker {victim} started \(pid (?!{old[victim]}\))\d+\)")
        async with asyncio.timeout(30):
            while live.workers()[victim] == old[victim]:
                await asyncio.sleep(0.05)
        await survivor_call
        rows = await wait_stored(live, 1)
        assert rows["CA-survives"]["end_reason"] == "stop"
        assert live.workers()[serving] == old[serving]  # the serving worker was never touched
        stats = await per_worker_stats(live)
        assert stats[victim]["worker"]["pid"] == live.workers()[victim]
        await call(live, http, "CA-after", 0.4)
        await wait_stored(live, 2)
        assert await metric(live, "mosbridge_calls_total") == 2


async def test_sigterm_drains_every_worker_and_writes_every_report(tmp_path: Path) -> None:
    async with supervised(tmp_path) as live, aiohttp.ClientSession() as http:
        calls = [asyncio.create_task(call(live, http, f"CA-drain-{i}", 2.5)) for i in range(4)]
        async with asyncio.timeout(10):
            while await metric(live, "mosbridge_calls_live") < 4:
                await asyncio.sleep(0.05)
        started = time.monotonic()
        live.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*calls)
        code = await asyncio.to_thread(live.proc.wait, 30)
        assert code == 0, live.text()
        assert time.monotonic() - started < 20
        rows = stored(live)
        assert sorted(rows) == [f"CA-drain-{i}" for i in range(4)]
        assert all(r["end_reason"] == "stop" for r in rows.values())  # they finished, not cut
        text = live.text()
        assert "stopped: every worker has exited" in text
        assert text.count("report(s) written this run") == 2
        assert "Traceback" not in text
