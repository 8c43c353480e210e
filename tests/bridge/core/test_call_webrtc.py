"""The call core on the WebRTC leg (opus16k): Opus packets for the track, the AI's RTP packets
to the caller (holes filled, late packets dropped), the same events on the data channel, the same
barge-in."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import opuslib
import opuslib.api.ctl
import opuslib.api.encoder
import pytest

from bridge.codecs import Transcoder
from bridge.codecs.g711 import Int16Array, ulaw_decode
from bridge.codecs.opus import OpusDecoder
from bridge.core.call import MAX_FILLED_AI_PACKETS, CallCore
from bridge.core.config import CallConfig
from bridge.core.events import CallEnded, Direction, Peer
from bridge.replay.legacy import TrackPcmTranscoder, receive_ai_audio
from quality.impairments import get_codec
from tests.bridge.core.test_call import STOP, ai, events, mark, media, started_core
from tests.reports import loose

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


def tone_16k(n_packets: int, hz: float = 440.0, amp: float = 8000.0) -> list[Int16Array]:
    n = np.arange(320 * n_packets)
    wave = (np.sin(2 * np.pi * hz * n / 16000) * amp).astype(np.int16)
    return [wave[320 * i: 320 * (i + 1)] for i in range(n_packets)]


def opus_packets(frames: list[Int16Array], fec: bool = False) -> list[bytes]:
    """What the far end's encoder puts in RTP: 20 ms Opus packets, with in-band FEC if asked."""
    enc = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
    if fec:
        opuslib.api.encoder.encoder_ctl(enc.encoder_state, opuslib.api.ctl.set_inband_fec, 1)
        opuslib.api.encoder.encoder_ctl(enc.encoder_state, opuslib.api.ctl.set_packet_loss_perc, 20)
    return [bytes(enc.encode(f.astype("<i2").tobytes(), 320)) for f in frames]


def responding_core(transcoder: Transcoder | None = None) -> CallCore:
    core = started_core(OPUS, transcoder=transcoder)
    split(core)
    core.receive_realtime(ai("response.created", response={"id": "resp1", "object": "realtime.response",
                                                            "status": "in_progress", "output": []}), 0.1)
    core.receive_realtime(ai("response.output_item.added", response_id="resp1", output_index=0,
                             item={"id": "item1", "type": "message", "role": "assistant"}), 0.1)
    return core


def heard(twilio: list[dict[str, Any]]) -> list[bytes]:
    """The 20 ms frames the caller hears, however many frames each media message carries."""
    audio = b"".join(base64.b64decode(m["media"]["payload"]) for m in twilio if m["event"] == "media")
    return [audio[i:i + 160] for i in range(0, len(audio), 160)]


def test_ai_packets_play_as_they_arrive_and_marks_follow() -> None:
    core = responding_core()
    for i, packet in enumerate(opus_packets(tone_16k(10))):
        core.receive_ai_packet(1000 + i, packet, 0.12 + 0.02 * i)
        _, _, twilio = split(core)
        # no receive buffer: each packet leaves for Twilio as one 20 ms frame, with its mark
        assert [m["event"] for m in twilio] == ["media", "mark"]
        assert twilio[0]["media"]["payload"] and len(heard(twilio)[0]) == 160
    core.receive_twilio(mark("m5"), 0.3)  # the fifth frame's mark: 100 ms heard
    core.receive_realtime(ai("input_audio_buffer.speech_started", audio_start_ms=500, item_id="u2"), 0.31)
    ai_events, _, twilio = split(core)
    assert [m["event"] for m in twilio] == ["clear"]
    trunc = next(e for e in ai_events if e["type"] == "conversation.item.truncate")
    assert trunc["item_id"] == "item1" and trunc["audio_end_ms"] == 100
    assert any(e["type"] == "output_audio_buffer.clear" for e in ai_events)
    core.receive_ai_packet(1010, opus_packets(tone_16k(1))[0], 0.33)  # in flight when the caller barged in
    assert split(core)[2] == [] and core.counters["late_track_frames_dropped"] == 1


def test_a_lost_packet_is_rebuilt_from_the_next_ones_fec() -> None:
    frames = tone_16k(12, hz=300.0)
    packets = opus_packets(frames, fec=True)
    whole = heard(feed(responding_core(), packets, range(12)))
    holed = responding_core()
    got = heard(feed(holed, packets, [i for i in range(12) if i != 6]))
    assert len(got) == 12  # the hole is filled: the caller's stream keeps its length
    assert holed.counters["ai_packets_missing"] == 1 and holed.counters["ai_packets_filled"] == 1
    assert holed.transcoder.concealed_to_caller == 1

    plc = responding_core()
    plc_got = heard(feed(plc, opus_packets(frames, fec=False), [i for i in range(12) if i != 6]))
    ref = ulaw_decode(whole[6]).astype(np.float64)

    def err(frame: bytes) -> float:
        return float(np.sqrt(np.mean((ulaw_decode(frame) - ref) ** 2)))

    # FEC carries the lost packet (at a lower rate); PLC only extrapolates the one before
    assert err(got[6]) < 0.5 * err(plc_got[6])


def test_a_long_hole_is_not_filled_and_late_or_repeated_packets_are_dropped() -> None:
    core = responding_core()
    packets = opus_packets(tone_16k(30))
    order = [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]  # the 16-bit sequence wraps in order
    order += [12]  # 10 missing (2..11): only the last 3 slots are filled, the rest was heard as silence
    order += [13, 13, 11, 14]  # a duplicate, then one older than what was decoded
    got = heard(feed(core, packets, order))
    assert len(got) == 8 + 3 + 1 + 2
    assert core.counters["ai_packets_missing"] == 10 and core.counters["ai_packets_filled"] == MAX_FILLED_AI_PACKETS
    assert core.counters["ai_packets_duplicate"] == 1 and core.counters["ai_packets_late"] == 1


def test_a_sender_that_starts_over_is_a_restart_not_loss() -> None:
    core = responding_core()
    packets = opus_packets(tone_16k(30))
    # a new SSRC or a restarted sender: the sequence jumps by thousands, forwards or back
    got = heard(feed(core, packets, [*range(100, 110), *range(40000, 40010), *range(20, 30)]))
    assert len(got) == 30 and core.counters["ai_seq_restarts"] == 2
    assert core.counters["ai_packets_missing"] == 0 and core.counters["ai_packets"] == 30


def feed(core: CallCore, packets: list[bytes], order: Iterable[int]) -> list[dict[str, Any]]:
    """Feed packets by sequence number (the payload is packets[seq % len]); Twilio's messages."""
    for k, seq in enumerate(order):
        core.receive_ai_packet(seq, packets[seq % len(packets)], 0.12 + 0.02 * k)
    return split(core)[2]


def test_pauses_in_an_answer_still_playing_after_response_done_are_forwarded() -> None:
    core = responding_core()
    core.receive_realtime(ai("output_audio_buffer.started", response_id="resp1"), 0.11)
    core.receive_realtime(ai("response.done", response={"id": "resp1", "object": "realtime.response",
                                                         "status": "completed", "output": []}), 0.12)
    quiet = [np.zeros(320, dtype=np.int16)]
    packets = opus_packets(tone_16k(2) + quiet * 3 + tone_16k(2) + quiet * 8)
    for seq in range(9):  # generation is over, but the track still plays the answer, pause and all
        core.receive_ai_packet(seq, packets[seq], 0.14 + 0.02 * seq)
    assert len(heard(split(core)[2])) == 9
    core.receive_realtime(ai("output_audio_buffer.stopped", response_id="resp1"), 0.4)
    split(core)
    for seq in range(9, 15):  # between answers: silence is not forwarded
        core.receive_ai_packet(seq, packets[seq], 0.4 + 0.02 * seq)
    assert heard(split(core)[2]) == [] and core.counters["idle_track_frames"] == 6


def _report_with_ai_packets(seqs: Iterable[int]) -> dict[str, Any]:
    core = responding_core()
    packets = opus_packets(tone_16k(50, hz=300.0))
    for k, seq in enumerate(seqs):
        core.receive_ai_packet(seq, packets[seq % 50], 0.12 + 0.02 * k)
    core.receive_twilio(STOP, 2.0)
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    return loose(ended.report.to_json())


def test_packets_lost_on_the_ai_leg_count_against_what_the_caller_hears() -> None:
    clean = _report_with_ai_packets(range(100))
    lossy = _report_with_ai_packets([s for s in range(100) if s % 20 != 7])  # 5 of 100 never arrive
    assert clean["ai_leg"]["loss_pct"] == 0.0 and lossy["ai_leg"]["loss_pct"] == pytest.approx(5.0)
    assert lossy["counters"]["ai_packets_missing"] == 5 and lossy["counters"]["ai_packets"] == 95
    # Opus conceals it (PLC/FEC), not the G.711 edge: G.107 §7.5 with Opus's own Bpl raises its Ie
    # to Ie + (95 - Ie) * 5 / (5 + Bpl), and the caller's R drops by exactly that
    opus = get_codec("opus16k")
    assert clean["r"] - lossy["r"] == pytest.approx((95.0 - opus.ie) * 5.0 / (5.0 + opus.bpl))
    assert lossy["dominant_impairment"] == "loss" and clean["dominant_impairment"] != "loss"
    # the AI leg's loss is not the Twilio edge's, nor the inbound direction's
    assert lossy["outbound"]["loss_pct"] == clean["outbound"]["loss_pct"]
    assert lossy["inbound"]["mos"] == clean["inbound"]["mos"]
    assert "AI leg's measured RTP loss" in lossy["assumptions"]["network_path"]
    [interval] = lossy["intervals"]
    assert interval["mos"] == pytest.approx(lossy["mos"], abs=0.01)


def test_audio_from_a_capture_made_before_the_bridge_decoded_rtp_still_plays() -> None:
    core = responding_core(TrackPcmTranscoder())
    for i in range(10):
        receive_ai_audio(core, tone_48k(start=960 * i), 0.12 + 0.02 * i)
    assert len(heard(split(core)[2])) >= 9


def test_silence_between_responses_is_not_played_and_rtp_figures_join_the_report() -> None:
    core = started_core(OPUS)
    split(core)
    for i, packet in enumerate(opus_packets([np.zeros(320, dtype=np.int16)] * 5)):
        core.receive_ai_packet(i, packet, 0.1 + 0.02 * i)
    assert split(core)[2] == [] and core.counters["idle_track_frames"] == 5
    core.record_rtp({"packets_sent": 200, "remote_packets_lost": 3, "rtt_ms": 42.0}, 4.0)
    core.receive_twilio(STOP, 4.1)
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    report = ended.report.to_json()
    assert report["ai_leg"] == {"transport": "webrtc", "loss_pct": 0.0,
                                "rtp": {"packets_sent": 200, "remote_packets_lost": 3, "rtt_ms": 42.0}}
    assert report["codec_chain"] == {"inbound": "g711-plc -> opus16k", "outbound": "opus16k -> g711-plc"}
    # nothing is held on the way back and the AI's Opus decodes straight to 8 kHz: the way back adds
    # no delay of its own, the way there the upsampler's and the encoder's lookahead
    assert core.transcoder.delay_to_caller.total_ms == 0.0
    assert report["inbound"]["delay_ms"] - report["outbound"]["delay_ms"] == \
        pytest.approx(core.transcoder.delay_to_ai.total_ms)


def test_the_websocket_formats_carry_no_ai_leg_block() -> None:
    core = started_core()
    core.receive_twilio(STOP, 1.0)
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    assert "ai_leg" not in ended.report.to_json()
