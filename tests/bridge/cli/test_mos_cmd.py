"""``mosbridge mos``: argument semantics, JSON contract and errors."""

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from bridge.cli.main import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["mos", "--json", *args]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_defaults_are_g107_reference(capsys: pytest.CaptureFixture[str]) -> None:
    d = run_json(capsys)
    assert d["r"] == pytest.approx(93.2, abs=0.05)
    assert d["mos"] == pytest.approx(4.41, abs=0.005)
    assert d["band"] == "excellent"
    assert d["model"] == "g107"
    assert set(d["impairments"]) >= {"is", "id", "ie_eff", "a"}


def test_delay_sets_t_ta_and_tr(capsys: pytest.CaptureFixture[str]) -> None:
    from quality.emodel import EModelParams, r_factor

    d = run_json(capsys, "--delay-ms", "200")
    assert d["r"] == pytest.approx(r_factor(EModelParams(t=200, ta=200, tr=400)).r)


def test_loss_and_codec_use_g113_bpl(capsys: pytest.CaptureFixture[str]) -> None:
    plc = run_json(capsys, "--loss-pct", "2", "--codec", "g711-plc")
    raw = run_json(capsys, "--loss-pct", "2", "--codec", "g711")
    # Ie,eff = 95 * 2 / (2 + 25.1) = 7.011 (with PLC) vs 95 * 2 / (2 + 4.3) = 30.16 (without)
    assert plc["impairments"]["ie_eff"] == pytest.approx(7.011, abs=1e-3)
    assert raw["impairments"]["ie_eff"] == pytest.approx(30.159, abs=1e-3)
    assert plc["dominant_impairment"] == raw["dominant_impairment"] == "loss"


def test_jitter_is_folded_in_through_a_stated_buffer(capsys: pytest.CaptureFixture[str]) -> None:
    # A buffer at the 99th percentile of exponential delay variation with mean J = 40 ms holds
    # 40 ln 100 = 184.2 ms and lets 1 % of frames come late: the same as that delay and loss.
    with_jitter = run_json(capsys, "--delay-ms", "150", "--jitter-ms", "40", "--codec", "g711-plc")
    as_delay = run_json(capsys, "--delay-ms", str(150 + 40 * math.log(100)), "--loss-pct", "1", "--codec", "g711-plc")
    assert with_jitter["r"] == pytest.approx(as_delay["r"])
    assert any("playout buffer" in s for s in with_jitter["assumptions"])


def test_simplified_model(capsys: pytest.CaptureFixture[str]) -> None:
    d = run_json(capsys, "--model", "simplified", "--delay-ms", "100", "--jitter-ms", "20", "--loss-pct", "1")
    assert d["r"] == pytest.approx(86.95)


def test_list_codecs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mos", "--list-codecs", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"g711", "g711-plc", "opus16k"} <= names
    assert {"pcmu", "pcm24k", "opus16k"} <= names  # the AI-side format names of bridge/codecs


@pytest.mark.parametrize(
    "args",
    [["--loss-pct", "150"], ["--delay-ms", "-1"], ["--delay-ms", "abc"], ["--codec", "nope"],
     ["--burst-ratio", "0.5"], ["--model", "pesq"], ["--delay-ms", "nan"]],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["mos", *args])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "bridge", "mos", "--delay-ms", "150", "--loss-pct", "1"],
                         capture_output=True, text=True, check=True).stdout
    assert "MOS" in out and "dominant" in out
