"""Shared pieces for tests that run the live bridge on loopback against the Realtime stand-in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twilio.request_validator import RequestValidator

from bridge.codecs.g711 import ulaw_encode
from bridge.live.server import Bridge, serve
from bridge.live.settings import Settings
from bridge.stand_ins.realtime_ws import FakeRealtimeConfig, FakeRealtimeServer, speech_like
from bridge.stand_ins.twilio_caller import FRAME_S, ScheduledFrame

AUTH_TOKEN = "12345678901234567890123456789012"


@dataclass
class Live:
    bridge: Bridge
    fake: FakeRealtimeServer
    settings: Settings

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.bridge.bound_port}"

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.bridge.bound_port}/media"

    def signed_headers(self, url: str, params: dict[str, str] | None = None) -> dict[str, str]:
        return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params or {})}


@contextlib.asynccontextmanager
async def live_bridge(tmp_path: Path, fake_config: FakeRealtimeConfig | None = None,
                      **overrides: Any) -> AsyncIterator[Live]:
    async with FakeRealtimeServer(fake_config or FakeRealtimeConfig(speed=8.0)) as fake:
        fields: dict[str, Any] = {
            "host": "127.0.0.1", "port": 0, "openai_url": fake.url, "openai_api_key": "sk-test",
            "twilio_auth_token": AUTH_TOKEN, "database_url": f"sqlite:///{tmp_path / 'calls.db'}",
            "interval_s": 1.0, "ping_interval_s": 0.25, "drain_timeout_s": 5.0,
            "pseudonym_key": "test-key",
            # the callers and the stand-in share the bridge's event loop in these tests: its lag is
            # theirs as much as the calls', so loop-lag admission stays off unless a test turns it on
            "overload_loop_lag_ms": 0.0,
        }
        fields.update(overrides)
        settings = Settings(**fields)
        ready: asyncio.Future[Bridge] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, on_ready=ready.set_result, stop=stop))
        bridge = await asyncio.wait_for(ready, 10)
        try:
            yield Live(bridge, fake, settings)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


def speech_frames(seconds: float, seed: int = 1) -> list[bytes]:
    """Speech-like mu-law caller frames (loud enough for the stand-in's VAD)."""
    samples = speech_like(int(seconds * 1000), 8000)
    data = ulaw_encode(samples)
    return [data[i:i + 160] for i in range(0, len(data) - 159, 160)]


def silence_frames(seconds: float) -> list[bytes]:
    return [b"\xff" * 160] * round(seconds / FRAME_S)


def schedule(frames: list[bytes], *, drop: set[int] | None = None,
             delays: list[float] | None = None) -> list[ScheduledFrame]:
    """Frames paced at 20 ms, numbered from 1; a dropped frame is never sent, so its media time
    is skipped (Twilio's loss); ``delays`` adds per-frame network delay, kept in order as TCP
    would (a frame never overtakes)."""
    out: list[ScheduledFrame] = []
    last = 0.0
    for i, frame in enumerate(frames):
        if drop and i + 1 in drop:
            continue
        at = max(last, i * FRAME_S + (delays[i] if delays else 0.0))
        last = at
        out.append(ScheduledFrame(i * 20, at, base64.b64encode(frame).decode()))
    return out


def gilbert_drops(n: int, p: float, q: float, seed: int) -> set[int]:
    """Frames (2..n-1: the first and last are always sent, so the media clock spans the call)
    lost by a two-state Markov chain."""
    rng = random.Random(seed)
    lost, drops = False, set()
    for frame in range(2, n):
        lost = rng.random() < ((1 - q) if lost else p)
        if lost:
            drops.add(frame)
    return drops
