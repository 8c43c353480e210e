"""Old-capture rules live on the replay side: picked by the capture's version, not in the live core."""

from __future__ import annotations

import io

import pytest

from bridge.core.call import CallCore
from bridge.core.config import CallConfig
from bridge.core.inputs import AiAudioIn, apply
from bridge.protocols.capture import CaptureError, parse_capture
from bridge.replay.legacy import CURRENT, TrackPcmTranscoder, adapter_for, apply_v1


def test_version_1_captures_replay_old_webrtc_audio_and_plain_logs_need_no_adapter() -> None:
    v1 = adapter_for(1)
    assert v1.apply is apply_v1
    assert isinstance(v1.transcoder(CallConfig(ai_format="opus16k")), TrackPcmTranscoder)
    assert v1.transcoder(CallConfig(ai_format="pcmu")) is None  # the live transcoder
    assert adapter_for(None) is CURRENT and adapter_for("1") is CURRENT


def test_the_live_dispatch_refuses_old_capture_audio() -> None:
    core = CallCore(CallConfig(ai_format="opus16k"), now=0.0)
    with pytest.raises(TypeError, match="legacy"):
        apply(core, AiAudioIn(bytes(1920)), 0.0)


def test_old_audio_on_a_core_without_the_track_decoder_is_bad_audio_not_a_crash() -> None:
    core = CallCore(CallConfig(ai_format="pcmu"), now=0.0)
    core.responses.created("r1", 0.0)
    apply_v1(core, AiAudioIn(b"\x01\x00" * 960), 0.1)
    assert core.counters["ai_bad_audio"] == 1 and core.counters.get("internal_errors", 0) == 0


def test_version_2_replays_with_the_live_rules_and_refuses_old_track_audio() -> None:
    assert adapter_for(2) is CURRENT
    header = '{"capture": 2, "started_at": "2026-12-03T00:00:00.000Z", "bridge_version": "x", "settings": {}}\n'
    line = '{"t": 0.1, "dir": "ai_audio_in", "b64": "AAAA"}\n'
    with pytest.raises(CaptureError, match="line 2: a ai_audio_in line in a version-2 capture"):
        parse_capture(io.StringIO(header + line))
    assert len(parse_capture(io.StringIO(header.replace('"capture": 2', '"capture": 1') + line)).records) == 1
