"""``mosbridge demo``: the whole product on one machine, no Twilio or OpenAI account needed.

The real bridge (``bridge.live.server.serve``) runs on loopback with the Realtime stand-in as its AI;
simulated Twilio callers (the load test's plans: talk, listen, a barge-in now and then) call it in
waves, per tenant with its own network: ``acme`` clean, ``globex`` a little lossy and jittery,
``initech`` bad enough (heavy loss and jitter) that its rolling MOS falls below the alert threshold
and the alert fires. Reports land in the store, the dashboard shows them, and the store stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean

import aiohttp

from bridge.live.server import Bridge, serve
from bridge.live.settings import Settings
from bridge.loadtest.run import LoadOptions, plan_calls
from bridge.ops.store import open_store
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer
from bridge.stand_ins.twilio_caller import ScheduledFrame, SimulatedCaller


@dataclass(frozen=True)
class Tenant:
    """One tenant's callers: how many per wave and the network they call over."""

    name: str
    calls_per_wave: int
    loss_pct: float
    jitter_ms: float
    delay_ms: float


TENANTS = (
    Tenant("acme", 3, 0.0, 0.0, 10.0),
    Tenant("globex", 2, 1.0, 8.0, 30.0),
    Tenant("initech", 2, 5.0, 25.0, 40.0),
)
TENANT_NAMES = tuple(t.name for t in TENANTS)


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 120.0
    call_s: float = 20.0
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///mosbridge.db"
    keep_serving: bool = True
    alert_for_s: float = 15.0
    seed: int = 1


@dataclass(frozen=True)
class TenantSummary:
    tenant: str
    calls: int
    mean_mos: float
    firing: bool


async def _call(caller: SimulatedCaller, frames: list[ScheduledFrame], start_at: float, hangup_s: float,
                http: aiohttp.ClientSession) -> None:
    await asyncio.sleep(start_at)
    await caller.run(frames, hangup_after_s=hangup_s, session=http)


async def _wave(media_url: str, wave: int, opts: DemoOptions, http: aiohttp.ClientSession) -> int:
    """One wave: every tenant's callers at once, each about ``call_s`` long; returns the calls that failed."""
    calls = []
    for tenant in TENANTS:
        load = LoadOptions(calls=tenant.calls_per_wave, ramp_s=1.0, duration_s=opts.call_s, loss_pct=tenant.loss_pct,
                           jitter_ms=tenant.jitter_ms, delay_ms=tenant.delay_ms, seed=opts.seed * 1000 + wave,
                           tenant=tenant.name)
        for plan in plan_calls(load, f"{tenant.name[:3]}{wave:03d}"):
            caller = plan.caller(media_url, {"tenant": tenant.name, "source": "demo"}, tenant.delay_ms)
            hangup = plan.hangup_after(opts.call_s - plan.start_at - 0.5)
            calls.append(_call(caller, plan.frames, plan.start_at, hangup, http))
    done = await asyncio.gather(*calls, return_exceptions=True)
    return sum(1 for d in done if isinstance(d, BaseException))


def settings_for(opts: DemoOptions, ai_url: str) -> Settings:
    """The bridge's settings for the demo: the stand-in as its AI, no Twilio signatures (the callers
    are local), an alert quick enough to fire within the demo, and no loop-lag admission: the callers
    and the stand-in share the bridge's event loop here, so its lag is theirs as much as the calls'."""
    return Settings(host=opts.host, port=opts.port, database_url=opts.database_url, openai_url=ai_url,
                    openai_api_key="demo", validate_twilio_signature=False, alert_for_s=opts.alert_for_s,
                    overload_loop_lag_ms=0.0,
                    alert_window_s=max(60.0, opts.duration_s), alert_eval_interval_s=2.0, alert_min_calls=3,
                    interval_s=5.0)


def summarize(database_url: str, tenants: tuple[str, ...] = TENANT_NAMES) -> list[TenantSummary]:
    """Each demo tenant's calls and mean MOS in the store, and whether its alert is firing."""
    store = open_store(database_url)
    try:
        firing = {a.tenant for a in store.firing_alerts()}
        out = []
        for tenant in tenants:
            rows = [r for r in store.list(tenant=tenant, limit=10_000) if isinstance(r.get("mos"), float | int)]
            out.append(TenantSummary(tenant, len(rows), fmean(r["mos"] for r in rows) if rows else float("nan"),
                                     tenant in firing))
        return out
    finally:
        store.close()


async def run_demo(opts: DemoOptions, say: Callable[[str], None] = print,
                   stop: asyncio.Event | None = None) -> list[TenantSummary]:
    """Start the bridge and the stand-in, call it in waves for ``duration_s``, print the dashboard's
    address, then keep serving (``keep_serving``) until SIGINT/SIGTERM or ``stop`` is set."""
    stop = stop or asyncio.Event()
    async with FakeRealtimeServer(FakeRealtimeConfig(speed=1.5, seed=opts.seed)) as fake:
        settings = settings_for(opts, fake.url)
        ready: asyncio.Future[Bridge] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(settings, on_ready=ready.set_result, stop=stop))
        bridge = await asyncio.wait_for(ready, 30)
        base = f"http://{'127.0.0.1' if opts.host in ('0.0.0.0', '') else opts.host}:{bridge.bound_port}"
        say(f"mosbridge demo: the bridge is up; open {base}/dashboard")
        say(f"  calling it for {opts.duration_s:.0f} s: " + ", ".join(
            f"{t.name} ({t.calls_per_wave} calls a wave, loss {t.loss_pct:g} %, jitter {t.jitter_ms:g} ms)"
            for t in TENANTS))
        try:
            media_url = base.replace("http://", "ws://") + "/media"
            waves = max(1, round(opts.duration_s / opts.call_s))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                for wave in range(waves):
                    if server.done():
                        break
                    failed = await _wave(media_url, wave, opts, http)
                    say(f"  wave {wave + 1}/{waves} done" + (f" ({failed} calls failed)" if failed else ""))
            await asyncio.sleep(settings.alert_eval_interval_s + 0.5)  # the last reports and an alert pass
            summary = await asyncio.to_thread(summarize, opts.database_url)
            for t in summary:
                say(f"  {t.tenant:<8} {t.calls:>3} calls  mean MOS {t.mean_mos:.2f}"
                    + ("  ALERT FIRING" if t.firing else ""))
            say(f"reports are in {opts.database_url}; the dashboard is at {base}/dashboard")
            if opts.keep_serving and not server.done():
                say("serving until Ctrl-C")
                await asyncio.shield(server)
            return summary
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await server

