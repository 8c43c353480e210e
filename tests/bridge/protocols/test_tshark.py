"""Jitter and loss as an independent tool reads them: captures as RTP pcaps through tshark's RTP
stream analysis (Wireshark's ``-z rtp,streams``: Lost, Mean Jitter, Max Jitter)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.main import main
from bridge.protocols.capture import Capture, parse_capture, read_capture
from bridge.protocols.pcap import caller_rtp_pcap
from bridge.replay.run import replay
from bridge.stand_ins.simulate import SimParams, simulate
from tests.tshark import tshark_streams

DATA = Path(__file__).resolve().parents[2] / "data"
def _check(capture: Capture, tmp_path: Path) -> dict[str, float]:
    """The report's frames, loss and jitter against tshark's reading of the same capture."""
    pcap = tmp_path / "call.pcap"
    pcap.write_bytes(caller_rtp_pcap(capture))
    inbound: dict[str, Any] = replay(capture, metrics_only=True).report.to_json()["inbound"]
    ws = tshark_streams(pcap)
    assert inbound["frames"] == ws["packets"]
    assert inbound["lost"] == pytest.approx(ws["lost"], rel=0.01)
    # tshark prints three decimals: within 1 % or its rounding
    assert inbound["jitter_ms"] == pytest.approx(ws["mean_jitter_ms"], rel=0.01, abs=0.0006)
    assert inbound["jitter_max_ms"] == pytest.approx(ws["max_jitter_ms"], rel=0.01, abs=0.0006)
    return ws


CASES: dict[str, dict[str, Any]] = {
    "jitter 5 ms, 3 % loss": {"jitter_ms": 5.0, "loss_pct": 3.0},
    "jitter 15 ms, 1 % loss": {"jitter_ms": 15.0, "loss_pct": 1.0},
    "jitter 30 ms": {"jitter_ms": 30.0},
    "Gilbert loss, Pareto jitter 10 ms": {"gilbert": (0.02, 0.3), "jitter_ms": 10.0, "jitter_dist": "pareto"},
    "a 400 ms stall": {"jitter_ms": 2.0, "stall_at_s": 20.0, "stall_ms": 400.0},
}


@pytest.mark.parametrize("case", list(CASES))
def test_report_jitter_and_loss_equal_tsharks(case: str, tmp_path: Path) -> None:
    sim = simulate(SimParams(seconds=60, **CASES[case]), random.Random(4))
    ws = _check(parse_capture(sim.text().splitlines()), tmp_path)
    assert ws["lost"] == sim.truth.lost  # the pcap carries the generator's loss
    assert ws["mean_jitter_ms"] > 0.5


def test_shipped_sample_and_replay_pcap_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "bursty_loss_jitter.jsonl"
    _check(read_capture(path), tmp_path)
    out = tmp_path / "cli.pcap"
    assert main(["replay", str(path), "--json", "--pcap", str(out)]) == 0
    assert out.read_bytes() == caller_rtp_pcap(read_capture(path))
    assert '"report_version": 2' in capsys.readouterr().out
