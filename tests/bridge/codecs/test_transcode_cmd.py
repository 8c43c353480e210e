"""`mosbridge transcode` through a minimal argparse harness, as bridge/cli/main.py wires it."""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bridge.cli import transcode as transcode_cmd


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mosbridge")
    sub = parser.add_subparsers(dest="command", required=True)
    transcode_cmd.add_parser(sub)
    args = parser.parse_args(["transcode", *argv])
    code: int = args.run(args)
    return code


def write(path: Path, samples: npt.NDArray[np.int16], rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def read(path: Path) -> tuple[int, npt.NDArray[np.int16]]:
    with wave.open(str(path)) as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def tone(rate: int, seconds: float = 1.0) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


@pytest.mark.parametrize(
    ("fmt", "direction", "in_rate", "out_rate", "delay"),
    [
        ("opus16k", "to-caller", 16000, 8000, "6.50"),
        ("opus16k", "to-ai", 8000, 16000, "7.75"),
        ("pcm24k", "to-caller", 24000, 8000, "1.25"),
        ("pcm24k", "to-ai", 8000, 24000, "1.25"),
        ("pcmu", "to-caller", 8000, 8000, "0.00"),
        ("pcmu", "to-ai", 8000, 8000, "0.00"),
    ],
)
def test_chain_writes_output_at_the_right_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, direction: str, in_rate: int, out_rate: int,
    delay: str,
) -> None:
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    x = tone(in_rate)
    write(src, x, in_rate)
    assert run([str(src), str(dst), "--format", fmt, "--direction", direction]) == 0
    rate, y = read(dst)
    assert rate == out_rate
    assert abs(y.size - out_rate) <= out_rate // 50
    expected_rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    assert abs(float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) / expected_rms - 1) < 0.15
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("chain: ")
    assert lines[1] == f"algorithmic delay: {delay} ms"


def test_loss_is_seeded_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.wav"
    write(src, tone(16000), 16000)
    outs = []
    for name in ("a.wav", "b.wav"):
        argv = [str(src), str(tmp_path / name), "--format", "opus16k", "--direction", "to-caller"]
        assert run([*argv, "--loss-pct", "20", "--seed", "4"]) == 0
        outs.append(read(tmp_path / name)[1])
    assert np.array_equal(outs[0], outs[1])
    first = capsys.readouterr().out.splitlines()[0]
    lost = int(first.split("lost ")[1].split("/")[0])
    assert 3 <= lost <= 20


@pytest.mark.parametrize(
    ("setup", "argv_tail", "needle"),
    [
        ("missing", ["--format", "pcmu", "--direction", "to-ai"], "cannot read"),
        ("garbage", ["--format", "pcmu", "--direction", "to-ai"], "cannot read"),
        ("stereo", ["--format", "pcmu", "--direction", "to-ai"], "16-bit mono"),
        ("rate", ["--format", "pcm24k", "--direction", "to-caller"], "expects 24000 Hz"),
        ("ok", ["--format", "pcmu", "--direction", "to-ai", "--loss-pct", "150"], "--loss-pct"),
        ("ok", ["--format", "opus16k", "--direction", "to-ai", "--bitrate", "10"], "bitrate"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, argv_tail: list[str], needle: str
) -> None:
    src = tmp_path / "in.wav"
    if setup == "garbage":
        src.write_bytes(b"not a wav file at all")
    elif setup == "stereo":
        write(src, tone(8000), 8000, channels=2)
    elif setup in ("rate", "ok"):
        write(src, tone(8000), 8000)
    assert run([str(src), str(tmp_path / "out.wav"), *argv_tail]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_unknown_format_is_rejected_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["a.wav", "b.wav", "--format", "g722", "--direction", "to-ai"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
