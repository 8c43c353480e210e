"""The call core on the WebRTC leg (opus16k): Opus packets for the track, track audio to the
caller, the same events on the data channel, the same barge-in."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bridge.call import CallCore
from bridge.call_config import CallConfig
from bridge.codecs.opus import OpusDecoder
from bridge.events import CallEnded, Direction, Peer
from tests.bridge.test_call import STOP, ai, events, mark, media, started_core

OPUS = CallConfig(ai_format="opus16k")


def tone_48k(ms: int = 20, hz: float = 440.0, amp: float = 8000.0, start: int = 0) -> bytes:
    n = np.arange(start, start + 48 * ms)
    return (np.sin(2 * np.pi * hz * n / 48000) * amp).astype("<i2").tobytes()


def split(core: CallCore) -> tuple[list[dict[str, Any]], list[bytes], list[dict[str, Any]]]:
    """(events for the data channel, Opus packets for the track, messages for Twilio)."""
    ai_events, packets, twilio = [], [], []
    for o in core.data_to_send():
        if o.peer is Peer.REALTIME and o.audio is not None:
            assert o.text == "" and o.direction is Direction.INBOUND
            packets.append(o.audio)
        elif o.peer is Peer.REALTIME:
            ai_events.append(json.loads(o.text))
        else:
            twilio.append(json.loads(o.text))
    return ai_events, packets, twilio


def test_caller_audio_leaves_as_16khz_opus_packets_and_the_session_names_no_format() -> None:
    core = started_core(OPUS)
    [update], packets, _ = split(core)
    assert update["type"] == "session.update"
    assert "format" not in update["session"]["audio"]["input"]
    assert "format" not in update["session"]["audio"]["output"]
    assert update["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
    for chunk in range(1, 6):
        core.receive_twilio(media(chunk), 0.02 * chunk)
    _, packets, _ = split(core)
    assert len(packets) == 5
    decoded = OpusDecoder().decode(packets[-1])
    assert decoded.size == 320  # 20 ms at 16 kHz: a real Opus packet


def test_track_audio_plays_during_a_response_and_marks_follow() -> None:
    core = started_core(OPUS)
    split(core)
    core.receive_realtime(ai("response.created", response={"id": "resp1", "object": "realtime.response",
                                                            "status": "in_progress", "output": []}), 0.1)
    core.receive_realtime(ai("response.output_item.added", response_id="resp1", output_index=0,
                             item={"id": "item1", "type": "message", "role": "assistant"}), 0.1)
    for i in range(10):
        core.receive_ai_audio(tone_48k(start=960 * i), 0.12 + 0.02 * i)
    _, _, twilio = split(core)
    media_out = [m for m in twilio if m["event"] == "media"]
    marks = [m for m in twilio if m["event"] == "mark"]
    assert len(media_out) >= 9 and len(marks) == len(media_out)  # every frame forwarded as it came
    core.receive_twilio(mark(marks[4]["mark"]["name"]), 0.3)
    core.receive_realtime(ai("input_audio_buffer.speech_started", audio_start_ms=500, item_id="u2"), 0.31)
    ai_events, _, twilio = split(core)
    assert [m["event"] for m in twilio] == ["clear"]
    trunc = next(e for e in ai_events if e["type"] == "conversation.item.truncate")
    assert trunc["item_id"] == "item1" and trunc["audio_end_ms"] == 100  # five 20 ms frames were heard
    assert any(e["type"] == "output_audio_buffer.clear" for e in ai_events)
    core.receive_ai_audio(tone_48k(), 0.33)  # in flight when the caller barged in
    assert split(core)[2] == [] and core.counters["late_track_frames_dropped"] == 1


def test_silence_between_responses_is_not_played_and_rtp_figures_join_the_report() -> None:
    core = started_core(OPUS)
    split(core)
    for i in range(5):
        core.receive_ai_audio(bytes(1920), 0.1 + 0.02 * i)
    assert split(core)[2] == [] and core.counters["idle_track_frames"] == 5
    core.record_rtp({"packets_sent": 200, "remote_packets_lost": 3, "rtt_ms": 42.0}, 4.0)
    core.receive_twilio(STOP, 4.1)
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    assert ended.report["ai_leg"] == {"transport": "webrtc",
                                      "rtp": {"packets_sent": 200, "remote_packets_lost": 3, "rtt_ms": 42.0}}
    assert ended.report["codec_chain"] == {"inbound": "g711 -> opus16k", "outbound": "opus16k -> g711"}
    # aiortc holds 4 frames in its receive buffer: 80 ms the caller waits for, counted in the delay
    assert ended.report["assumptions"]["webrtc_receive_buffer_ms"] == 80.0
    opus_lookahead = core.transcoder.delay_to_ai.codec_ms
    assert ended.report["outbound"]["delay_ms"] - ended.report["inbound"]["delay_ms"] == \
        pytest.approx(80.0 - opus_lookahead)


def test_the_websocket_formats_carry_no_ai_leg_block() -> None:
    core = started_core()
    core.receive_twilio(STOP, 1.0)
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    assert "ai_leg" not in ended.report
