"""The impairment simulator against the call core: every shipped sample replays to its ground truth.

Ground truth comes from the generator's bookkeeping (``bridge/stand_ins/simulate.py``); the hand-worked
cases below derive their expected figures from the parameters alone.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge.cli import simulate as simulate_cmd
from bridge.protocols.capture import parse_capture, read_capture
from bridge.replay.run import replay
from bridge.stand_ins.simulate import SILENCE, SimParams, simulate

DATA = Path(__file__).resolve().parents[2] / "data"
CAPTURES = ["clean", "random_loss_2pct", "bursty_loss_jitter", "reorder_dup_stall"]
# The core counts a forward jump in chunks as a gap even when a reordered frame fills it later.


def _truth(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / f"{name}.truth.json").read_text())
    truth: dict[str, Any] = doc["truth"]
    return truth


def _inbound(name: str) -> dict[str, Any]:
    inbound: dict[str, Any] = replay(read_capture(DATA / f"{name}.jsonl")).report.to_json()["inbound"]
    return inbound


def _replay_text(text: str) -> dict[str, Any]:
    inbound: dict[str, Any] = replay(parse_capture(text.splitlines(keepends=True))).report.to_json()["inbound"]
    return inbound


# ------------------------------------------------------------------ shipped samples vs the core


@pytest.mark.parametrize("name", CAPTURES)
def test_sample_loss_matches_truth(name: str) -> None:
    truth, got = _truth(name), _inbound(name)
    assert got["expected"] == truth["frames_generated"]
    assert got["frames"] == truth["frames_delivered"]
    assert got["lost"] == truth["lost"]
    assert got["loss_pct"] == truth["loss_pct"]
    assert got["max_loss_run"] == truth["max_loss_run"]
    assert got["duplicates"] == truth["duplicates"]
    assert got["reordered"] == truth["reordered"]
    assert got["too_late"] == 0


@pytest.mark.parametrize("name", CAPTURES)
def test_sample_gaps_are_loss_runs(name: str) -> None:
    assert _inbound(name)["gaps"] == _truth(name)["loss_runs"]


@pytest.mark.parametrize("name", CAPTURES)
def test_sample_jitter_matches_rfc3550_from_schedule(name: str) -> None:
    truth, got = _truth(name), _inbound(name)
    assert got["jitter_ms"] == pytest.approx(truth["jitter_ms"], abs=1e-6)


def test_samples_exercise_what_they_are_named_for() -> None:
    assert _truth("clean")["lost"] == 0 and _truth("clean")["jitter_ms"] < 1e-6
    assert _truth("random_loss_2pct")["loss_pct"] == pytest.approx(2.0)  # 6 of 300
    bursty = _truth("bursty_loss_jitter")
    assert bursty["max_loss_run"] >= 3 and bursty["jitter_ms"] > 1.0
    rds = _truth("reorder_dup_stall")
    assert rds["reordered"] > 0 and rds["duplicates"] > 0 and rds["jitter_ms"] > 1.0


def test_mos_orders_clean_over_random_over_bursty_jitter() -> None:
    clean, rand, bursty = (_inbound(n)["mos"] for n in ("clean", "random_loss_2pct", "bursty_loss_jitter"))
    assert clean > rand > bursty
    assert _inbound("bursty_loss_jitter")["burst_r"] > _inbound("random_loss_2pct")["burst_r"]


def test_plain_log_replays_with_exact_loss_and_no_jitter() -> None:
    result = replay(read_capture(DATA / "plain_twilio_log.jsonl"))
    got = result.report.to_json()["inbound"]
    # make_samples drops chunks {20, 21, 22, 75, 140} of 150: 5 lost in 3 runs, the longest 3.
    assert got["jitter_ms"] is None
    assert (got["expected"], got["lost"], got["gaps"], got["max_loss_run"]) == (150, 5, 3, 3)
    assert got["loss_pct"] == pytest.approx(100 * 5 / 150)
    assert any("plain Twilio log" in w for w in result.warnings)
    first = json.loads((DATA / "plain_twilio_log.jsonl").read_text().splitlines()[0])
    assert first == {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def _make_samples(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", DATA / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shipped_samples_are_what_make_samples_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _make_samples(monkeypatch).generate(tmp_path)
    assert len(written) == 10
    for path in written:
        shipped = DATA / path.name
        assert shipped.read_bytes() == path.read_bytes(), \
            f"{shipped.name} is stale: rerun .venv/bin/python tests/data/make_samples.py"
        if path.suffix == ".jsonl":
            assert shipped.stat().st_size <= 150 * 1024


# ------------------------------------------------------------------ the generator, hand-worked


def test_same_seed_same_lines_other_seed_other_lines() -> None:
    p = SimParams(seconds=2, loss_pct=5, jitter_ms=5, reorder_pct=5, duplicate_pct=5)
    a, b = simulate(p, random.Random(7)), simulate(p, random.Random(7))
    assert a.lines == b.lines and a.truth == b.truth
    assert simulate(p, random.Random(8)).lines != a.lines


def test_explicit_drops_give_runs_and_edges_are_always_delivered() -> None:
    sim = simulate(SimParams(seconds=1, drop=frozenset({1, 3, 4, 5, 10, 50})), random.Random(0))
    t = sim.truth  # 50 frames; 1 and 50 are kept; {3,4,5} and {10} are two runs
    assert (t.frames_generated, t.lost, t.loss_runs, t.max_loss_run) == (50, 4, 2, 3)
    assert t.loss_pct == pytest.approx(8.0)
    got = _replay_text(sim.text())
    assert (got["lost"], got["gaps"], got["max_loss_run"], got["expected"]) == (4, 2, 3, 50)


def test_loss_is_a_timestamp_step_and_the_counters_never_skip() -> None:
    # Twilio's shape: chunk and sequenceNumber count the messages sent; lost audio shows only in
    # media.timestamp (frames 3, 4 and 7 of 10 lost: timestamps 40, 60 and 120 ms are absent).
    sim = simulate(SimParams(seconds=0.2, drop=frozenset({3, 4, 7})), random.Random(0))
    media = [json.loads(line)["msg"] for line in sim.lines if '"event":"media"' in line]
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, 8))
    assert [int(m["sequenceNumber"]) for m in media] == list(range(2, 9))
    assert [int(m["media"]["timestamp"]) for m in media] == [0, 20, 80, 100, 140, 160, 180]
    assert sim.truth.lost_frames == (3, 4, 7)
    got = _replay_text(sim.text())
    assert (got["expected"], got["lost"], got["gaps"], got["chunk_gaps"]) == (10, 3, 2, 0)


def test_gilbert_truth_burst_ratio_is_one_over_p_plus_q_of_the_pattern() -> None:
    # Frames 1..10 with 3, 4 and 7 lost: received->lost 2 of 6 transitions, lost->received 2 of 3.
    t = simulate(SimParams(seconds=0.2, drop=frozenset({3, 4, 7})), random.Random(0)).truth
    assert t.burst_r == pytest.approx(1 / (2 / 6 + 2 / 3))


def test_total_loss_keeps_first_and_last() -> None:
    t = simulate(SimParams(seconds=1, loss_pct=100), random.Random(0)).truth
    assert (t.lost, t.loss_runs, t.max_loss_run, t.frames_delivered) == (48, 1, 48, 2)


def _media_order(lines: tuple[str, ...]) -> list[tuple[float, int]]:
    out = []
    for line in lines:
        obj = json.loads(line)
        msg = obj.get("msg", {})
        if msg.get("event") == "media":
            out.append((obj["t"], int(msg["media"]["chunk"])))
    return out


def test_full_reordering_swaps_every_other_pair_after_the_first_frame() -> None:
    sim = simulate(SimParams(seconds=0.2, reorder_pct=100), random.Random(0))
    assert [c for _, c in _media_order(sim.lines)] == [1, 3, 2, 5, 4, 7, 6, 9, 8, 10]
    assert sim.truth.reordered == 4
    got = _replay_text(sim.text())
    assert (got["reordered"], got["lost"]) == (4, 0)


def test_full_duplication_sends_every_frame_twice() -> None:
    sim = simulate(SimParams(seconds=0.2, duplicate_pct=100), random.Random(0))
    assert [c for _, c in _media_order(sim.lines)] == [c for c in range(1, 11) for _ in (0, 1)]
    assert (sim.truth.duplicates, sim.truth.messages_sent) == (10, 20)
    assert _replay_text(sim.text())["duplicates"] == 10


def test_stall_delivers_the_backlog_at_once_and_jitter_follows_rfc3550() -> None:
    sim = simulate(SimParams(seconds=1, stall_at_s=0.3, stall_ms=200), random.Random(0))
    arrivals = dict((c, t) for t, c in _media_order(sim.lines))
    # Frames sent at 0.30 .. 0.48 s (chunks 16..25) wait for the stall's end at 0.5 s.
    assert all(arrivals[c] == 0.5 for c in range(16, 26))
    assert arrivals[15] == pytest.approx(0.28) and arrivals[26] == pytest.approx(0.5)
    # Transit jumps by 0.2 s at chunk 16, then falls 0.02 s a frame for 10 frames, then is flat for 24:
    # J = 0.2/16, then J -> 0.02 + (J - 0.02)(15/16)^10, then J (15/16)^24.
    j = 0.2 / 16
    j = 0.02 + (j - 0.02) * (15 / 16) ** 10
    j *= (15 / 16) ** 24
    assert sim.truth.jitter_last_ms == pytest.approx(1000 * j, rel=1e-9)
    got = _replay_text(sim.text())
    assert got["jitter_last_ms"] == pytest.approx(1000 * j, rel=1e-9)
    # J peaks once the stalled frames have come in: 0.2/16 then the 10 falling steps
    assert got["jitter_max_ms"] == pytest.approx(1000 * (0.02 + (0.2 / 16 - 0.02) * (15 / 16) ** 10), rel=1e-9)


def test_pareto_extra_delay_has_the_requested_mean_and_tail() -> None:
    alpha, mean_ms = 3.0, 10.0
    t = simulate(SimParams(seconds=200, jitter_ms=mean_ms, jitter_dist="pareto", pareto_alpha=alpha),
                 random.Random(3)).truth
    scale = (alpha - 1) * mean_ms  # Lomax: P(X > x) = (1 + x/scale)^-alpha
    assert t.extra_delay_mean_ms == pytest.approx(mean_ms, rel=0.05)
    assert t.extra_delay_p95_ms == pytest.approx(scale * (20 ** (1 / alpha) - 1), rel=0.05)


def test_capture_shape_speech_and_timers() -> None:
    sim = simulate(SimParams(seconds=6, speech=True), random.Random(0))
    header = json.loads(sim.lines[0])
    assert header["capture"] == 2 and header["settings"]["interval_s"] == 5.0
    events = [json.loads(line) for line in sim.lines[1:]]
    assert events[0] == {"t": 0.0, "dir": "ai_connected"}
    assert [e["t"] for e in events if e["dir"] == "timer"] == [5.0]
    assert events[-1]["msg"]["event"] == "stop" and events[-1]["t"] == pytest.approx(6.0)
    payloads = {int(e["msg"]["media"]["chunk"]): base64.b64decode(e["msg"]["media"]["payload"])
                for e in events if e.get("msg", {}).get("event") == "media"}
    # 1.0 s talk, 0.6 s pause: chunks 1..50 talk, 51..80 silence, 81.. talk again.
    assert payloads[1] != SILENCE and payloads[50] != SILENCE and payloads[81] != SILENCE
    assert payloads[51] == SILENCE and payloads[80] == SILENCE
    report = replay(parse_capture(sim.text().splitlines(keepends=True))).report.to_json()
    assert report["tenant"] == "sim" and report["end_reason"] == "stop"


@pytest.mark.parametrize("kwargs", [{"pareto_alpha": 1.0}, {"gilbert": (0.1, 0.0)}, {"loss_pct": 101.0},
                                    {"seconds": 0.02}, {"delay_ms": -1.0}])
def test_bad_params_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimParams(**kwargs)


# ------------------------------------------------------------------ mosbridge simulate


def _cli(argv: list[str]) -> int:
    """``bridge.cli.main.main`` once ``simulate`` is wired there; a parser of its own until then."""
    from bridge.cli import main as cli

    parser = cli.build_parser()
    wired = any(isinstance(a, argparse._SubParsersAction) and "simulate" in a.choices for a in parser._actions)
    if wired:
        return cli.main(argv)
    parser = argparse.ArgumentParser(prog="mosbridge")
    simulate_cmd.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def test_cli_writes_capture_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth_path = tmp_path / "call.jsonl", tmp_path / "call.truth.json"
    code = _cli(["simulate", str(out), "--seconds", "2", "--gilbert", "0.05,0.4", "--jitter-ms", "5",
                 "--reorder-pct", "2", "--duplicate-pct", "2", "--stall-at", "1", "--stall-ms", "100",
                 "--speech", "--seed", "9", "--truth", str(truth_path)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(truth_path.read_text())
    assert printed["seed"] == 9 and printed["params"]["gilbert"] == [0.05, 0.4]
    expected = simulate(SimParams(seconds=2, gilbert=(0.05, 0.4), jitter_ms=5, reorder_pct=2, duplicate_pct=2,
                                  stall_at_s=1.0, stall_ms=100, speech=True), random.Random(9))
    assert out.read_text() == expected.text()
    got, t = replay(read_capture(out)).report.to_json()["inbound"], printed["truth"]
    assert (got["lost"], got["duplicates"], got["reordered"]) == (t["lost"], t["duplicates"], t["reordered"])
    assert got["jitter_ms"] == pytest.approx(t["jitter_ms"], abs=1e-6)


def test_cli_plain_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain.jsonl"
    assert _cli(["simulate", str(out), "--seconds", "1", "--drop", "5,6", "--plain"]) == 0
    assert json.loads(capsys.readouterr().out)["truth"]["jitter_ms"] is None
    capture = read_capture(out)
    assert capture.plain
    assert replay(capture).report.to_json()["inbound"]["lost"] == 2


@pytest.mark.parametrize("argv", [
    ["--loss-pct", "1", "--gilbert", "0.1,0.5"],
    ["--stall-at", "1"],
    ["--gilbert", "0.1"],
    ["--gilbert", "0.1,0"],
    ["--pareto-alpha", "0.5"],
    ["--loss-pct", "150"],
])
def test_cli_bad_arguments_exit_2(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli(["simulate", str(tmp_path / "x.jsonl"), *argv])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
