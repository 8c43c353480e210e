"""Framing, errors, concealment, counters and measured chain delay of the three transcoders."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codecs import (
    CorruptOpusPacket,
    FrameSizeError,
    LibopusMissing,
    OddPcmLength,
    UnsupportedFormat,
    make_transcoder,
)
from bridge.codecs.g711 import SILENCE_FRAME, ulaw_decode
from bridge.codecs.offline import caller_frames, loopback
from bridge.codecs.opus import MISSING_MESSAGE, load_opuslib
from tests.bridge.codecs.test_resample import bandlimited_noise, measured_delay_ms

FORMATS = ["pcmu", "pcm24k", "opus16k"]
NOISE = np.round(bandlimited_noise(8000)).astype(np.int16)
PCM24 = np.random.default_rng(5).integers(-8000, 8000, 2400).astype("<i2").tobytes()


def test_pcmu_passes_payloads_through_untouched() -> None:
    tc = make_transcoder("pcmu")
    frames = caller_frames(NOISE[:1600])
    assert [p for f in frames for p in tc.to_ai(f)] == frames
    assert [f for p in frames for f in tc.to_caller(p)] == frames
    assert tc.delay_to_ai.total_ms == tc.delay_to_caller.total_ms == 0.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_to_ai_payload_shapes(fmt: str) -> None:
    tc = make_transcoder(fmt)
    payloads = [p for f in caller_frames(NOISE[:1600]) for p in tc.to_ai(f)]
    assert len(payloads) == 10
    if fmt == "pcm24k":
        assert {len(p) for p in payloads} == {960}
    if fmt == "opus16k":
        assert all(0 < len(p) <= 24000 // 8 // 50 + 10 for p in payloads)
    assert tc.frames_to_ai == 10


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, len(PCM24)), max_size=30))
def test_pcm24k_any_delta_sizes_give_whole_frames_equal_to_one_shot(cuts: list[int]) -> None:
    one = make_transcoder("pcm24k")
    whole = one.to_caller(PCM24) + one.flush_to_caller()
    points = sorted(set(cuts))
    deltas = [PCM24[a:b] for a, b in zip([0, *points], [*points, len(PCM24)], strict=True)]
    tc = make_transcoder("pcm24k")
    streamed: list[bytes] = []
    for delta in deltas:
        streamed += tc.to_caller(delta)
    assert all(len(f) == 160 for f in streamed)
    streamed += tc.flush_to_caller()
    assert streamed == whole
    assert len(whole) == 5


def test_flush_pads_remainder_and_resets() -> None:
    tc = make_transcoder("pcm24k")
    assert tc.to_caller(PCM24[:600]) == []
    frames = tc.flush_to_caller()
    assert len(frames) == 1 and len(frames[0]) == 160
    assert tc.flush_to_caller() == []
    pcmu = make_transcoder("pcmu")
    assert pcmu.to_caller(b"\x10" * 170) == [b"\x10" * 160]
    assert pcmu.flush_to_caller() == [b"\x10" * 10 + b"\xff" * 150]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [0, 159, 161, 320])
def test_wrong_caller_frame_size_raises_and_state_survives(fmt: str, size: int) -> None:
    tc = make_transcoder(fmt)
    with pytest.raises(FrameSizeError):
        tc.to_ai(b"\xff" * size)
    assert tc.errors == 1
    assert len(tc.to_ai(SILENCE_FRAME)) == 1
    assert tc.frames_to_ai == 1


def test_odd_pcm_total_raises_at_flush_then_recovers() -> None:
    tc = make_transcoder("pcm24k")
    assert tc.to_caller(PCM24[:101]) == []
    with pytest.raises(OddPcmLength):
        tc.flush_to_caller()
    frames = tc.flush_to_caller()
    assert len(frames) == 1 and len(frames[0]) == 160
    assert len(tc.to_caller(PCM24[:960])) == 1


@pytest.mark.parametrize("bad", [b"", b"\xff", b"\x03\xff\xff"])
def test_corrupt_opus_packet_raises_and_decoder_survives(bad: bytes) -> None:
    tc = make_transcoder("opus16k")
    packets = [p for f in caller_frames(NOISE[:1600]) for p in tc.to_ai(f)]
    out = tc.to_caller(packets[0])
    with pytest.raises(CorruptOpusPacket):
        tc.to_caller(bad)
    assert tc.errors == 1
    for p in packets[1:]:
        out += tc.to_caller(p)
    assert len(out) == 10 and all(len(f) == 160 for f in out)
    assert np.abs(ulaw_decode(b"".join(out[3:]))).max() > 1000


def test_opus_loss_uses_decoder_plc() -> None:
    tc = make_transcoder("opus16k")
    voiced = np.round(6000 * np.sin(2 * np.pi * 200 * np.arange(1600) / 8000)).astype(np.int16)
    for f in caller_frames(voiced):
        for p in tc.to_ai(f):
            tc.to_caller(p)
    concealed = tc.lost_from_ai()
    assert len(concealed) == 1 and tc.concealed_to_caller == 1
    assert np.abs(ulaw_decode(concealed[0])).max() > 1000


@pytest.mark.parametrize("fmt", FORMATS)
def test_caller_concealment_repeats_and_fades_to_silence(fmt: str) -> None:
    tc = make_transcoder(fmt)
    voiced = np.round(6000 * np.sin(2 * np.pi * 200 * np.arange(800) / 8000)).astype(np.int16)
    for f in caller_frames(voiced):
        tc.to_ai(f)
    levels = []
    for _ in range(5):
        payload = tc.conceal_to_ai()[0]
        if fmt == "pcmu":
            levels.append(float(np.abs(ulaw_decode(payload).astype(np.float64)).max()))
        elif fmt == "pcm24k":
            levels.append(float(np.abs(np.frombuffer(payload, "<i2").astype(np.float64)).max()))
    assert tc.concealed_to_ai == 5
    if levels:
        assert levels[0] > 3000
        assert levels[0] > levels[1] > levels[2]
        assert levels[4] <= 16


@pytest.mark.parametrize("fmt", ["pcmu", "pcm24k"])
def test_ai_side_loss_is_concealed_in_the_caller_stream(fmt: str) -> None:
    tc = make_transcoder(fmt)
    tc.to_caller(b"\x20" * 320 if fmt == "pcmu" else PCM24[:1920])
    frame = tc.lost_from_ai()
    assert len(frame) == 1 and tc.concealed_to_caller == 1
    assert np.abs(ulaw_decode(frame[0]).astype(np.int64)).max() > 100


@pytest.mark.parametrize(("fmt", "expected_ms"), [("pcmu", 0.0), ("pcm24k", 2.5), ("opus16k", 7.75)])
def test_loopback_measured_delay_equals_reported(fmt: str, expected_ms: float) -> None:
    tc = make_transcoder(fmt)
    reported = tc.delay_to_ai.total_ms + tc.delay_to_caller.total_ms
    out = loopback(tc, NOISE).astype(np.float64)[: NOISE.size]
    assert reported == expected_ms
    assert abs(measured_delay_ms(out, NOISE.astype(np.float64), 8000) - reported) <= 0.25
    assert tc.delay_to_ai.resample_ms <= 2.0 and tc.delay_to_caller.resample_ms <= 2.0


def test_unknown_format_and_bad_bitrate_are_typed_errors() -> None:
    with pytest.raises(UnsupportedFormat):
        make_transcoder("g722")
    with pytest.raises(UnsupportedFormat):
        make_transcoder("opus16k", bitrate=1000)
    assert make_transcoder("opus16k", bitrate=16000).delay_to_ai.codec_ms == 6.5


def test_missing_libopus_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opuslib", None)
    with pytest.raises(LibopusMissing) as info:
        load_opuslib()
    assert str(info.value) == MISSING_MESSAGE
    assert "\n" not in str(info.value)
    with pytest.raises(LibopusMissing):
        make_transcoder("opus16k")
    assert len(make_transcoder("pcm24k").to_ai(SILENCE_FRAME)) == 1
