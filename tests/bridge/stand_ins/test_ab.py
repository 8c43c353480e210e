"""`mosbridge ab`: the alignment, the input shaping, bad input, and one real A/B of the three
AI-side formats on loopback (espeak-ng speech, about 25 s)."""

from __future__ import annotations

import base64
import json
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bridge.cli import ab as ab_cmd
from bridge.codecs.g711 import ulaw_encode
from bridge.ops.store import open_store
from bridge.stand_ins.ab import (
    AbError,
    align,
    aligned_segment,
    load_input,
    round_trip_ms,
    shape_utterance,
)
from tests.bridge.codecs.speech import espeak_available, speech

I16 = npt.NDArray[np.int16]


def write_wav(path: Path, samples: I16, rate: int, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def noise(n: int, seed: int, scale: float = 8000.0) -> I16:
    return np.round(np.random.default_rng(seed).normal(0.0, scale, n)).clip(-32768, 32767).astype(np.int16)


# ------------------------------------------------------------------------ alignment


def test_align_finds_a_known_delay_and_scores_the_match() -> None:
    ref = noise(4000, 1)
    delayed = np.concatenate([np.zeros(137, np.int16), (ref // 2).astype(np.int16), np.zeros(500, np.int16)])
    delayed = (delayed + noise(delayed.size, 2, 100.0)).astype(np.int16)
    a = align(ref, delayed)
    assert a.lag == 137 and a.peak > 0.99
    segment = aligned_segment(delayed, a.lag, ref.size)
    assert segment.size == ref.size and np.corrcoef(segment, ref)[0, 1] > 0.99


def test_align_handles_an_echo_that_starts_inside_the_reference() -> None:
    ref = noise(3000, 3)
    late = ref[50:].copy()  # the echo misses the reference's first 50 samples
    a = align(ref, late)
    assert a.lag == -50 and a.peak > 0.99
    segment = aligned_segment(late, a.lag, ref.size)
    assert not segment[:50].any() and np.array_equal(segment[50:], ref[50:])


def test_align_of_unrelated_signals_has_a_low_peak() -> None:
    assert align(noise(2000, 4), noise(6000, 5)).peak < 0.2


def test_a_relay_with_no_delay_has_a_zero_round_trip() -> None:
    # the echo's head (held_s before the end) arrives with the last frame, 20 ms after it was sent
    assert round_trip_ms(heard_s=10.0 + 2.0 - 0.02, sent_s=10.0, held_s=2.0) == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------ input


def tone_frames(seconds: float, level: float = 6000.0) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return ulaw_encode(np.round(level * np.sin(2 * np.pi * 300 * t)).astype(np.int16))


def silence(seconds: float) -> bytes:
    return b"\xff" * int(8000 * seconds)


def test_shaping_trims_the_edges_and_shortens_long_pauses() -> None:
    ulaw = silence(1.0) + tone_frames(0.5) + silence(1.2) + tone_frames(0.5) + silence(0.2) + tone_frames(0.3) \
        + silence(2.0)
    utt = shape_utterance(ulaw, "test")
    # 0.2 s kept each side, the 1.2 s pause cut to 0.4 s, the 0.2 s pause kept
    assert utt.seconds == pytest.approx(0.2 + 0.5 + 0.4 + 0.5 + 0.2 + 0.3 + 0.2)
    assert utt.pauses_shortened == 1 and not utt.truncated
    assert shape_utterance(ulaw, max_seconds=1.0).truncated


def test_a_silent_input_is_refused() -> None:
    with pytest.raises(AbError, match="no speech"):
        shape_utterance(silence(2.0))


def test_a_twilio_log_gives_its_media_in_chunk_order(tmp_path: Path) -> None:
    a, b = tone_frames(0.02, 5000), tone_frames(0.02, 9000)
    lines = [{"event": "start", "start": {"callSid": "CA1", "customParameters": {}}, "streamSid": "MZ1"}]
    for chunk, payload in ((2, b), (1, a), (2, b), (3, a)):
        lines.append({"event": "media", "streamSid": "MZ1", "media": {
            "track": "inbound", "chunk": str(chunk), "timestamp": str(20 * (chunk - 1)),
            "payload": base64.b64encode(payload).decode()}})
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    utt = load_input(path)
    assert utt.ulaw == a + b + a and utt.source == "capture, 3 media frames"


def test_a_wav_at_another_rate_is_resampled_to_8k(tmp_path: Path) -> None:
    t = np.arange(22050) / 22050
    x = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    utt = load_input(write_wav(tmp_path / "tone.wav", x, 22050))
    assert utt.seconds == pytest.approx(1.0) and "22050 Hz" in utt.source
    y = utt.samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(int(np.argmax(spectrum)) * 8000 / y.size - 500) < 2


@pytest.mark.parametrize("case", ["missing", "stereo", "silent", "garbage", "no-media"])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    path = tmp_path / "input"
    if case == "stereo":
        write_wav(path, noise(16000, 6), 8000, channels=2)
    elif case == "silent":
        write_wav(path, np.zeros(16000, np.int16), 16000)
    elif case == "garbage":
        path.write_text("this is not a capture\n")
    elif case == "no-media":
        path.write_text(json.dumps({"event": "connected", "protocol": "Call"}) + "\n")
    assert ab_cmd.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mosbridge ab: error: ") and err.count("\n") == 1


def test_bad_formats_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("pcmu,g729", "pcmu,pcmu", ""):
        with pytest.raises(SystemExit) as exc:
            ab_cmd.main([str(tmp_path / "x.wav"), "--formats", bad])
        assert exc.value.code == 2
    assert "formats" in capsys.readouterr().err


# ------------------------------------------------------------------------ the A/B, live on loopback


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
def test_ab_of_the_three_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = write_wav(tmp_path / "speech.wav", speech("The birch canoe slid on the smooth planks.", 16000), 16000)
    keep = tmp_path / "reports"
    assert ab_cmd.main([str(wav), "--json", "--keep-dir", str(keep)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input"] == str(wav) and 2.0 < out["utterance_s"] < 3.0
    results = {r["format"]: r for r in out["results"]}
    assert [r["format"] for r in out["results"]] == ["pcmu", "pcm24k", "opus16k"]

    for fmt, r in results.items():
        # (a "loopback:" note only says the machine was busy: the E-model then counts jitter)
        assert [n for n in r["notes"] if not n.startswith("loopback:")] == [], (fmt, r["notes"])
        # the E-model figures are the report the bridge wrote for that call
        store = open_store(f"sqlite:///{keep / (fmt + '.db')}")
        report = store.get(r["call_sid"])
        store.close()
        assert report is not None and report["ai_format"] == fmt
        assert (r["emodel_mos"], r["r"], r["dominant_impairment"]) == (
            report["mos"], report["r"], report["dominant_impairment"])
        for direction in ("inbound", "outbound"):
            assert r["bridge_latency_ms"][direction]["p99"] == report[direction]["bridge_latency_ms"]["p99"]
        # the echo the caller heard is the utterance it sent
        assert r["xcorr_peak"] > 0.8, (fmt, r["xcorr_peak"])
        assert r["echo_s"] > out["utterance_s"]
        assert 1.5 < r["pesq"] <= 4.6, (fmt, r["pesq"])

    # G.711 both ways through a pass-through chain: the echo is the sent bytes, near-transparent
    assert results["pcmu"]["pesq"] > 4.0
    assert results["pcm24k"]["pesq"] > 3.0 and results["opus16k"]["pesq"] > 3.0
    # the WebRTC leg adds two Opus encoders' lookahead (6.5 ms each) and, with RTP read straight from
    # the receivers on both sides, no jitter buffer (aiortc's would hold 80 ms on each)
    assert -10.0 < results["pcmu"]["round_trip_ms"] < 100.0
    assert 10.0 < results["opus16k"]["round_trip_ms"] < 100.0
    assert results["pcmu"]["round_trip_ms"] < results["opus16k"]["round_trip_ms"] - 5.0
