"""A short load run, as CI can afford it: functional facts only (capacity is a benchmark)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import aiohttp
import pytest

from bridge.cli.main import main
from bridge.loadtest import run as loadtest
from bridge.loadtest.arrivals import count_bounds
from bridge.loadtest.run import ChildExited, LoadOptions, Processes, plan_calls, run_load


async def test_twenty_calls_complete_with_reports_and_a_true_mos() -> None:
    affinity = os.sched_getaffinity(0)
    lines: list[str] = []
    opts = LoadOptions(calls=20, ramp_s=2.0, duration_s=8.0, loss_pct=2.0, jitter_ms=10.0, delay_ms=20.0,
                       progress=lines.append)
    r = await run_load(opts)
    assert os.sched_getaffinity(0) == affinity  # the harness gives its CPUs back
    assert r.calls == {"started": 20, "completed": 20, "failed": 0}
    assert r.mos["reports"] == 20
    assert 0 <= r.mos["reports_flagged_saturated"] <= 20  # counted from each report's bridge_host
    assert r.mos["mean_abs_error"] is not None and r.mos["mean_abs_error"] < 0.15
    # every frame sent was forwarded, and every lost one concealed: the AI got each 20 ms slot
    generated = sum(p.generated for p in plan_calls(opts, "x"))
    assert r.frames["caller_sent"] < r.frames["bridge_inbound"] == generated
    assert r.frames["caller_received"] > 0 and r.frames["bridge_outbound"] >= r.frames["caller_received"]
    assert r.bridge_cpu_pct is not None and r.rss_mb is not None
    assert r.rig_cpu_pct is not None and 0.0 < r.rig_cpu_pct <= 100.0 * 1.05  # of the rig's own CPUs
    assert r.caller_turn_latency_ms and r.caller_turn_latency_ms["p50"] > 0
    assert r.event_loop_lag_ms is not None and r.event_loop_lag_ms["max"] >= r.event_loop_lag_ms["p50"] >= 0.0
    # two scrapes of the lag histogram, 2 s after the ramp and 1 s before the hangups: ~400 ticks
    assert r.steady_loop_lag is not None and 100 < r.steady_loop_lag["ticks"] <= 500
    steady = r.steady_deadline_misses  # the same window's misses, a part of the whole run's
    assert steady is not None and all(0 <= steady[d] <= r.deadline_misses[d] for d in ("inbound", "outbound"))
    assert any("calls live" in line for line in lines)  # the progress line ran
    assert r.wall_s < 8.0 + 10.0  # it stops by itself


def test_plans_are_seeded_and_inject_what_they_say() -> None:
    opts = LoadOptions(calls=3, duration_s=20.0, loss_pct=5.0, jitter_ms=15.0, seed=7)
    a, b = plan_calls(opts, "x"), plan_calls(opts, "x")
    assert [p.frames for p in a] == [p.frames for p in b]
    lost = sum(p.generated - len(p.frames) for p in a) / sum(p.generated for p in a)
    assert lost == pytest.approx(0.05, abs=0.015)
    assert all(f2.send_at >= f1.send_at for p in a for f1, f2 in zip(p.frames, p.frames[1:], strict=False))


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["loadtest", "--calls", "0"], ["loadtest", "--ramp", "20", "--duration", "10"],
                 ["loadtest", "--format", "g729"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_json_output_of_a_tiny_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["loadtest", "--calls", "2", "--duration", "4", "--ramp", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calls"]["completed"] == 2
    for key in ("frames", "deadline_misses", "bridge_latency_ms", "event_loop_lag_ms", "bridge_cpu_pct",
                "rss_mb_per_call", "mos"):
        assert key in out


async def test_a_child_that_dies_at_start_up_is_reported_with_its_own_error(tmp_path: Path) -> None:
    procs = Processes(LoadOptions(calls=1, bridge_env={"MOSBRIDGE_AI_FORMAT": "g729"}), tmp_path)
    with pytest.raises(ChildExited, match=r"(?s)the bridge exited with code 2.*ai_format"):
        await procs.start()
    assert all(p.returncode is not None for p in procs.procs)


async def test_a_port_taken_before_the_bridge_binds_it_is_retried(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real = loadtest._free_ports
        choices = iter([[taken, *real(2)]])
        monkeypatch.setattr(loadtest, "_free_ports", lambda n: next(choices, None) or real(n))
        procs = Processes(LoadOptions(calls=1), tmp_path)
        assert procs.bridge_port == taken
        await procs.start()
        try:
            assert procs.bridge_port != taken
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{procs.bridge_port}/healthz") as r:
                assert r.status == 200
        finally:
            await procs.stop()


async def test_a_fixed_rate_run_arrives_on_rate_and_reports_what_the_callers_saw() -> None:
    opts = LoadOptions(rate=3.0, call_seconds=2.0, duration_s=2.0, arrivals="poisson", seed=4)
    r = await run_load(opts)
    lo, hi = count_bounds(3.0, 2.0, "poisson")
    assert r.arrivals is not None and r.arrivals["count"] == r.calls["started"]
    assert lo <= r.calls["started"] <= hi and r.calls["started"] > 0
    assert r.calls["failed"] == 0 and r.calls["completed"] == r.calls["started"]
    view = r.caller_view
    assert view["not_measured"] is None
    for way in ("to_ai_ms", "to_caller_ms"):
        figures = view[way]
        assert figures is not None and 0.0 <= figures["p50"] <= figures["p99"] <= figures["max"] < 2000.0
    assert view["counts"]["frames_matched"] == view["counts"]["frames_sent"] > 0  # every frame reached the AI
    assert view["counts"]["tags_matched"] > 0
    queued = view["queued_at_hangup_ms"]
    assert queued is not None and 0.0 <= queued["p50"] <= queued["max"]
    assert r.messages["ai_received"] >= view["counts"]["frames_matched"] and r.messages["ai_sent"] > 0
    assert r.wall_s < 2.0 + 2.0 + 15.0


async def test_transcoded_formats_report_the_callers_view_as_not_measured() -> None:
    r = await run_load(LoadOptions(rate=2.0, call_seconds=1.5, duration_s=1.0, arrivals="even", ai_format="pcm24k"))
    assert r.calls["started"] == 2 and r.calls["failed"] == 0  # evenly spaced: exactly rate x duration
    assert r.caller_view["to_ai_ms"] is None and r.caller_view["to_caller_ms"] is None
    assert "pcm24k is transcoded" in r.caller_view["not_measured"]


def test_rate_arguments_that_do_not_fit_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["loadtest", "--rate", "2", "--calls", "5"], ["loadtest", "--rate", "2", "--find-max"],
                 ["loadtest", "--rate", "0"], ["loadtest", "--arrivals", "bursty"],
                 ["loadtest", "--stand-in-stamps", "x.jsonl"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


async def test_a_full_bridge_refuses_the_excess_and_the_admitted_calls_complete() -> None:
    """Twice the calls a bridge admits (MOSBRIDGE_MAX_CALLS): the excess is refused at the upgrade
    (503, counted as refused, not failed) and every admitted call completes with its report."""
    opts = LoadOptions(calls=8, ramp_s=1.0, duration_s=5.0, bridge_env={"MOSBRIDGE_MAX_CALLS": "4"})
    r = await run_load(opts)
    assert r.refused == 4
    assert r.calls == {"started": 8, "completed": 4, "failed": 0}
    assert r.mos["reports"] == 4
