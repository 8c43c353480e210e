"""Admission control: the lag median against its definition, and a full process refusing new calls
at every door while its admitted calls go on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bridge.live.admission import LAG_SAMPLES, Admission, AdmissionLimits
from bridge.live.settings import OVERLOAD_TWIML
from bridge.stand_ins.twilio_caller import start_message
from tests.bridge.live_rig import live_bridge


def _feed(adm: Admission, lag_ms: float, samples: int) -> None:
    for _ in range(samples):
        adm.observe_lag(lag_ms / 1000.0)


def test_a_saturated_loop_refuses_once_most_recent_samples_lag_and_recovers() -> None:
    adm = Admission(AdmissionLimits(max_calls=0, loop_lag_ms=25.0))
    _feed(adm, 1.0, LAG_SAMPLES)
    _feed(adm, 40.0, LAG_SAMPLES // 2)  # a minority of the window: the median is still 1 ms
    assert adm.lag_ms == 1.0 and adm.refusal(10) is None
    _feed(adm, 40.0, 1)  # now the majority
    assert adm.lag_ms == 40.0 and adm.refusal(10) == "loop_lag"
    assert adm.refusal(0) is None  # with no calls the lag is not theirs: nothing to protect
    _feed(adm, 22.0, LAG_SAMPLES)  # below the ceiling, above 80 % of it: still refused
    assert adm.lag_ms == 22.0 and adm.refusal(10) == "loop_lag"
    _feed(adm, 1.0, LAG_SAMPLES // 2 + 1)
    assert adm.refusal(10) is None


def test_one_long_pause_does_not_refuse_calls() -> None:
    adm = Admission(AdmissionLimits(max_calls=0, loop_lag_ms=25.0))
    _feed(adm, 0.5, 200)
    adm.observe_lag(0.400)  # a 400 ms garbage-collector pause: one sample
    assert adm.refusal(10) is None and adm.lag_ms < 25.0


def test_call_limit_and_draining() -> None:
    adm = Admission(AdmissionLimits(max_calls=3, loop_lag_ms=0.0))
    assert adm.refusal(2) is None
    assert adm.refusal(3) == "max_calls"
    assert adm.refusal(0, draining=True) == "draining"
    assert Admission(AdmissionLimits(0, 0.0)).refusal(10_000) is None


async def _read(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


def _sample(metrics: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))


async def test_a_full_process_refuses_new_calls_at_every_door(tmp_path: Path) -> None:
    async with live_bridge(tmp_path, validate_twilio_signature=False, max_calls=2) as live, \
            aiohttp.ClientSession() as http:
        admitted = [await http.ws_connect(live.media_url) for _ in range(2)]
        readers = [asyncio.create_task(_read(ws)) for ws in admitted]
        for i, ws in enumerate(admitted):
            await ws.send_str(start_message(f"MZa{i}", f"CA-admitted-{i}", {"tenant": "t"}))
        async with asyncio.timeout(5):
            while len(live.bridge.calls) < 2:
                await asyncio.sleep(0.01)
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(live.media_url)
        assert exc.value.status == 503
        async with http.post(live.base + "/twiml", data={"CallSid": "CA-x"}) as r:
            assert r.status == 200 and await r.text() == OVERLOAD_TWIML
        async with http.get(live.base + "/readyz") as r:
            assert r.status == 503 and (await r.json())["status"] == "max_calls"
        async with http.get(live.base + "/metrics") as r:
            metrics = await r.text()
        assert _sample(metrics, 'mosbridge_calls_refused_total{reason="max_calls",route="media"}') == 1
        assert _sample(metrics, 'mosbridge_calls_refused_total{reason="max_calls",route="twiml"}') == 1
        assert _sample(metrics, "mosbridge_ready ") == 0
        assert all(not ws.closed for ws in admitted)  # the admitted calls go on
        for ws in admitted:
            await ws.close()
        await asyncio.gather(*readers)
        async with asyncio.timeout(5):
            while live.bridge.calls:
                await asyncio.sleep(0.01)
        async with http.get(live.base + "/readyz") as r:
            assert r.status == 200
        async with http.post(live.base + "/twiml", data={"CallSid": "CA-y"}) as r:
            assert "<Connect><Stream" in await r.text()
