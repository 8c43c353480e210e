"""The call core, driven with literal Twilio and Realtime JSON and an explicit clock."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from bridge.codecs import Transcoder
from bridge.core.call import CallCore, State
from bridge.core.config import CallConfig
from bridge.core.events import CallEnded, CallStarted, Direction, Outgoing, Peer, Problem, ReconnectRealtime
from bridge.core.tags import pseudonymize
from tests.reports import loose

SID = "MZ00000000000000000000000000000001"
FRAME = base64.b64encode(bytes([0x55] * 160)).decode()  # 20 ms of mu-law


def start(params: dict[str, str] | None = None) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": SID,
        "start": {"accountSid": "AC1", "streamSid": SID, "callSid": "CA1", "tracks": ["inbound"],
                  "customParameters": params or {"tenant": "acme"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    })


def media(chunk: int, payload: str = FRAME, ts: int | None = None) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(chunk + 1), "streamSid": SID,
                       "media": {"track": "inbound", "chunk": str(chunk),
                                 "timestamp": str((chunk - 1) * 20 if ts is None else ts), "payload": payload}})


def mark(name: str) -> str:
    return json.dumps({"event": "mark", "sequenceNumber": "99", "streamSid": SID, "mark": {"name": name}})


STOP = json.dumps({"event": "stop", "sequenceNumber": "500", "streamSid": SID,
                   "stop": {"accountSid": "AC1", "callSid": "CA1"}})


def delta(rid: str, item: str, ms: int, n: int = 0) -> str:
    audio = base64.b64encode(bytes([0x2A] * (8 * ms))).decode()  # mu-law at 8 kHz: 8 bytes per ms
    return json.dumps({"type": "response.output_audio.delta", "event_id": f"ev{n}", "response_id": rid,
                       "item_id": item, "output_index": 0, "content_index": 0, "delta": audio})


def ai(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": "ev", **fields})


def drain(core: CallCore) -> list[dict[str, Any]]:
    return [dict(json.loads(o.text), _peer=o.peer.value) for o in core.data_to_send()]


def events(core: CallCore) -> list[Any]:
    out = []
    while (e := core.next_event()) is not None:
        out.append(e)
    return out


def started_core(config: CallConfig | None = None, params: dict[str, str] | None = None,
                 transcoder: Transcoder | None = None) -> CallCore:
    core = CallCore(config or CallConfig(), now=0.0, transcoder=transcoder)
    core.receive_twilio('{"event":"connected","protocol":"Call","version":"1.0.0"}', 0.0)
    core.receive_twilio(start(params), 0.001)
    core.realtime_connected(0.002)
    return core


def test_session_update_then_audio_forwarded_unchanged_for_pcmu() -> None:
    core = started_core()
    sent = drain(core)
    assert sent[0]["type"] == "session.update"
    assert sent[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    now = 0.02
    for chunk in range(1, 4):
        core.receive_twilio(media(chunk), now)
        now += 0.020
    appends = drain(core)
    assert [a["type"] for a in appends] == ["input_audio_buffer.append"] * 3
    assert all(a["audio"] == FRAME for a in appends)
    assert isinstance(events(core)[0], CallStarted)


def test_barge_in_exact_sequence() -> None:
    core = started_core(CallConfig(outbound_chunk_ms=0))  # a message per frame: test_chunked_* has today's
    drain(core)
    core.receive_realtime(ai("response.created", response={"id": "r1", "status": "in_progress"}), 1.0)
    for i in range(3):
        core.receive_realtime(delta("r1", "item1", 100, i), 1.0 + i * 0.01)
    out = drain(core)
    kinds = [(o.get("event"), o.get("mark", {}).get("name")) for o in out]
    # 100 ms of mu-law = 5 frames, then a mark naming the audio sent so far
    assert kinds == ([("media", None)] * 5 + [("mark", "m1")] + [("media", None)] * 5 + [("mark", "m2")]
                     + [("media", None)] * 5 + [("mark", "m3")])
    assert all(len(base64.b64decode(o["media"]["payload"])) == 160 for o in out if o["event"] == "media")

    core.receive_twilio(mark("m1"), 1.15)  # the first 100 ms played
    core.receive_realtime(ai("input_audio_buffer.speech_started", audio_start_ms=900, item_id="u2"), 1.16)
    out = drain(core)
    assert [o["_peer"] for o in out] == ["twilio", "realtime"]
    assert out[0] == {"event": "clear", "streamSid": SID, "_peer": "twilio"}
    assert out[1]["type"] == "conversation.item.truncate"
    assert (out[1]["item_id"], out[1]["content_index"], out[1]["audio_end_ms"]) == ("item1", 0, 100)

    # Twilio echoes the marks it dropped because of the clear: they do not mean played.
    core.receive_twilio(mark("m2"), 1.17)
    core.receive_twilio(mark("m3"), 1.17)
    assert core.playback.played_ms("item1") == 100
    core.receive_realtime(delta("r1", "item1", 100, 9), 1.18)  # late delta of the cancelled response
    assert drain(core) == []
    core.receive_realtime(ai("response.done", response={"id": "r1", "status": "cancelled"}), 1.2)
    c = core.counters
    assert (c["barge_ins"], c["marks_played"], c["marks_cleared"], c["late_deltas_dropped"]) == (1, 1, 2, 1)


def test_chunked_outbound_sends_a_message_and_a_mark_per_chunk_and_barge_in_stays_exact() -> None:
    """Twilio plays media of any size in order (its Media Streams docs): 100 ms per message cuts
    the messages per talking second from 50 media + marks to 10 + 10, and a mark after each keeps
    audio_end_ms exact to one message."""
    core = started_core(CallConfig(outbound_chunk_ms=100))
    drain(core)
    core.receive_realtime(ai("response.created", response={"id": "r1", "status": "in_progress"}), 1.0)
    core.receive_realtime(delta("r1", "item1", 300, 0), 1.0)  # 300 ms in one delta
    out = drain(core)
    assert [(o["event"], o.get("mark", {}).get("name")) for o in out] == [
        ("media", None), ("mark", "m1"), ("media", None), ("mark", "m2"), ("media", None), ("mark", "m3")]
    sizes = [len(base64.b64decode(o["media"]["payload"])) for o in out if o["event"] == "media"]
    assert sizes == [800, 800, 800]  # 100 ms of mu-law at 8 kHz each
    assert core.latency[Direction.OUTBOUND].summary().count == 0  # nothing sent yet
    core.record_sent([Outgoing(Peer.TWILIO, "", 1.0, Direction.OUTBOUND, frames=5)], 1.004)
    assert core.latency[Direction.OUTBOUND].summary().count == 5  # latency is per 20 ms frame
    core.receive_twilio(mark("m2"), 1.25)  # 200 ms played
    core.receive_realtime(ai("input_audio_buffer.speech_started", audio_start_ms=900, item_id="u2"), 1.26)
    truncate = [o for o in drain(core) if o.get("type") == "conversation.item.truncate"]
    assert truncate[0]["audio_end_ms"] == 200


def test_speech_with_nothing_playing_is_not_a_barge_in() -> None:
    core = started_core()
    drain(core)
    core.receive_realtime(ai("input_audio_buffer.speech_started", audio_start_ms=0, item_id="u1"), 1.0)
    assert drain(core) == []
    assert core.counters["barge_ins"] == 0


def test_a_timestamp_gap_is_concealed_and_loss_reported_exactly() -> None:
    # Twilio's shape: frames 10, 11 and 50 of 100 were lost before Twilio, so their media time is
    # skipped while chunk and sequenceNumber count on without a hole.
    core = started_core()
    drain(core)
    now = 0.02
    sent = [k for k in range(1, 101) if k not in (10, 11, 50)]
    for chunk, k in enumerate(sent, start=1):
        core.receive_twilio(media(chunk, ts=(k - 1) * 20), now + k * 0.020)
    appends = drain(core)
    assert len(appends) == 100  # 97 received + 3 concealed
    assert core.counters["concealed_frames"] == 3
    core.receive_twilio(STOP, 3.0)
    ended = [e for e in events(core) if isinstance(e, CallEnded)]
    report = ended[0].report.to_json()
    assert report["inbound"]["loss_pct"] == pytest.approx(3.0)
    assert (report["inbound"]["gaps"], report["inbound"]["max_loss_run"]) == (2, 2)
    assert report["inbound"]["frames"] == 97
    assert report["inbound"]["chunk_gaps"] == 0
    assert report["intervals"][0]["loss_pct"] == pytest.approx(3.0)  # per interval from the media clock too
    assert report["end_reason"] == "stop"
    assert report["inbound"]["dominant_impairment"] == "loss"
    assert report["report_version"] == 2


def test_a_chunk_gap_on_a_whole_media_clock_is_an_anomaly_not_loss() -> None:
    core = started_core()
    drain(core)
    for k in range(1, 51):
        chunk = k if k < 20 else k + 3  # three chunk numbers skipped, no media time missing
        core.receive_twilio(media(chunk, ts=(k - 1) * 20), k * 0.020)
    assert len(drain(core)) == 50 and core.counters["concealed_frames"] == 0
    core.receive_twilio(STOP, 1.1)
    inbound = next(e for e in events(core) if isinstance(e, CallEnded)).report.to_json()["inbound"]
    assert (inbound["lost"], inbound["loss_pct"], inbound["chunk_gaps"]) == (0, 0.0, 1)


def test_a_duplicated_message_and_a_lost_frame_are_counted_once_each() -> None:
    core = started_core()
    drain(core)
    core.receive_twilio(media(1, ts=0), 0.02)
    core.receive_twilio(media(2, ts=20), 0.04)
    core.receive_twilio(media(2, ts=20), 0.04)  # the same message again
    core.receive_twilio(media(3, ts=60), 0.08)  # 40 ms lost before Twilio
    core.receive_twilio(STOP, 0.1)
    inbound = next(e for e in events(core) if isinstance(e, CallEnded)).report.to_json()["inbound"]
    assert (inbound["expected"], inbound["frames"], inbound["lost"], inbound["duplicates"]) == (4, 3, 1, 1)


def test_bad_media_timestamps_are_counted_not_lost() -> None:
    core = started_core()
    drain(core)
    for k in range(1, 11):
        core.receive_twilio(media(k, ts=(k - 1) * 20), k * 0.020)
    core.receive_twilio(media(11, ts=3_600_000), 0.22)  # an hour ahead: a corrupt or restarted clock
    core.receive_twilio(media(12, ts=3_600_020), 0.24)
    core.receive_twilio(media(13, ts=3_599_980), 0.26)  # 40 ms back with the counter in order: backwards
    core.receive_twilio(media(14, ts=3_600_040), 0.28)
    assert len(drain(core)) == 14  # every frame's audio still reaches the AI, nothing concealed
    core.receive_twilio(STOP, 0.3)
    evs = events(core)
    assert {p.kind for p in evs if isinstance(p, Problem)} >= {"timestamp_jump", "timestamp_backwards"}
    report = next(e for e in evs if isinstance(e, CallEnded)).report.to_json()
    inbound = report["inbound"]
    assert (report["counters"]["timestamp_jump"], report["counters"]["timestamp_backwards"]) == (1, 1)
    assert (inbound["timestamp_jumps"], inbound["timestamp_backwards"]) == (1, 1)
    assert (inbound["expected"], inbound["lost"]) == (13, 0)


def test_bad_input_is_counted_and_the_call_goes_on() -> None:
    core = CallCore(CallConfig(max_message_bytes=4096), now=0.0)
    core.receive_twilio(media(1), 0.0)  # before start
    core.receive_twilio(start(), 0.01)
    core.realtime_connected(0.01)
    core.receive_twilio("{not json", 0.02)
    core.receive_twilio(media(1, payload="@@@not base64@@@"), 0.03)
    core.receive_twilio(media(2, payload=base64.b64encode(b"\xff" * 100).decode()), 0.04)
    core.receive_twilio(json.dumps({"event": "media", "streamSid": SID}), 0.05)
    core.receive_twilio(json.dumps({"event": "bogus"}), 0.06)
    core.receive_twilio("x" * 5000, 0.07)
    core.receive_realtime("][", 0.08)
    core.receive_twilio(media(3), 0.09)
    assert core.data_to_send()[-1].peer is Peer.REALTIME  # a good frame still flows
    core.receive_twilio(STOP, 1.0)
    c = core.counters
    assert (c["media_before_start"], c["bad_json"], c["bad_base64"], c["bad_frame"], c["bad_message"],
            c["unknown_twilio_event"], c["oversize"], c["ai_bad_event"]) == (1, 1, 1, 1, 1, 1, 1, 1)
    evs = events(core)
    assert sum(isinstance(e, Problem) for e in evs) >= 8
    report = next(e for e in evs if isinstance(e, CallEnded)).report.to_json()
    assert report["counters"]["bad_base64"] == 1


def test_phi_ids_are_pseudonymized_everywhere() -> None:
    core = started_core(params={"tenant": "clinic", "vertical": "healthcare", "patient_id": "P-12345"})
    core.receive_twilio(STOP, 1.0)
    evs = events(core)
    blob = json.dumps([e.__dict__ for e in evs], default=str)
    assert "P-12345" not in blob
    report = next(e for e in evs if isinstance(e, CallEnded)).report.to_json()
    assert report["tenant"] == "clinic"
    assert report["tags"] == {"vertical": "healthcare",
                              "patient_id": pseudonymize("P-12345", CallConfig().pseudonym_key)}


def test_format_mismatch_is_loud() -> None:
    core = started_core()
    session = {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                             "output": {"format": {"type": "audio/pcmu"}}}}
    core.receive_realtime(ai("session.updated", session=session), 0.1)
    probs = [e for e in events(core) if isinstance(e, Problem)]
    assert probs[-1].kind == "ai_format_mismatch" and probs[-1].level == "error"
    assert core.counters["ai_format_mismatch"] == 1


def test_dtmf_becomes_a_conversation_item_and_is_counted() -> None:
    core = started_core()
    drain(core)
    core.receive_twilio(json.dumps({"event": "dtmf", "streamSid": SID, "sequenceNumber": "5",
                                    "dtmf": {"track": "inbound_track", "digit": "7"}}), 1.0)
    out = drain(core)
    assert out[0]["type"] == "conversation.item.create"
    assert "7" in out[0]["item"]["content"][0]["text"]
    assert core.counters["dtmf_digits"] == 1


def test_ai_disconnect_reconnects_with_context_then_gives_up() -> None:
    core = started_core(CallConfig(max_ai_reconnects=1))
    core.receive_realtime(ai("response.output_audio_transcript.done", response_id="r", item_id="i",
                             output_index=0, content_index=0, transcript="Hello, how can I help?"), 0.5)
    drain(core)
    core.realtime_closed(1.0, "1006")
    assert any(isinstance(e, ReconnectRealtime) for e in events(core))
    core.receive_twilio(media(1), 1.01)  # audio while the AI is down is held ...
    assert drain(core) == []
    core.realtime_connected(1.5)
    out = drain(core)
    assert out[0]["type"] == "session.update"
    assert out[1]["item"]["role"] == "assistant"
    assert out[1]["item"]["content"][0]["text"] == "Hello, how can I help?"
    assert out[2] == {"type": "input_audio_buffer.append", "audio": FRAME, "_peer": "realtime"}  # ... sent once up
    assert core.counters["frames_held_for_ai"] == 1
    core.realtime_closed(2.0, "1011")
    ended = [e for e in events(core) if isinstance(e, CallEnded)]
    assert ended and ended[0].reason == "ai_failed: 1011"
    assert core.state is State.ENDED
    assert ended[0].report.to_json()["counters"]["ai_reconnects"] == 1


def test_slow_ai_audio_is_an_underrun() -> None:
    core = started_core()
    drain(core)
    core.receive_realtime(ai("response.created", response={"id": "r1", "status": "in_progress"}), 1.0)
    core.receive_realtime(delta("r1", "i1", 100), 1.0)  # plays until 1.1
    core.receive_realtime(delta("r1", "i1", 100), 1.3)  # 200 ms late: 10 silent frame slots
    assert (core.playback.underruns, core.playback.underrun_frames) == (1, 10)
    core.receive_twilio(STOP, 2.0)
    report = next(e for e in events(core) if isinstance(e, CallEnded)).report.to_json()
    assert report["outbound"]["gaps"] == 1
    assert report["outbound"]["loss_pct"] == pytest.approx(100 * 10 / 20)


def test_timer_closes_intervals_and_latency_comes_from_send_times() -> None:
    core = started_core(CallConfig(interval_s=1.0))
    drain(core)
    now = 0.0
    for chunk in range(1, 151):
        now = chunk * 0.020
        core.receive_twilio(media(chunk), now)
        items: list[Outgoing] = core.data_to_send()
        core.record_sent(items, now + 0.0005)
        deadline = core.get_timer()
        assert deadline is not None
        if now >= deadline:
            core.handle_timer(now)
    core.receive_twilio(STOP, now)
    report = next(e for e in events(core) if isinstance(e, CallEnded)).report.to_json()
    assert len(report["intervals"]) == 3
    assert report["inbound"]["bridge_latency_ms"]["p50"] == pytest.approx(0.5, rel=0.03)
    assert all(i["mos"] > 4.0 for i in report["intervals"])


def test_a_long_healthy_session_renews_the_reconnect_budget() -> None:
    core = started_core(CallConfig(max_ai_reconnects=1, ai_healthy_s=60.0))
    core.realtime_closed(3600.0, "session_expired")  # after an hour: reconnect 1 of 1
    core.realtime_connected(3600.5)
    core.realtime_closed(7200.5, "session_expired")  # another hour: the budget was renewed
    assert not core.ended
    assert core.counters["ai_reconnects"] == 2
    core.realtime_connected(7201.0)
    core.realtime_closed(7202.0, "1011")  # a quick failure right after: out of budget
    assert core.ended


def test_a_stalled_response_is_counted_once() -> None:
    core = started_core(CallConfig(ai_stall_s=2.0))
    drain(core)
    core.receive_realtime(ai("response.created", response={"id": "r1", "status": "in_progress"}), 1.0)
    core.receive_realtime(delta("r1", "i1", 100), 1.1)
    assert core.get_timer() == pytest.approx(3.1)
    core.handle_timer(3.1)
    assert core.counters["ai_stalls"] == 1
    assert any(isinstance(e, Problem) and e.kind == "ai_stall" for e in events(core))
    core.handle_timer(5.0)
    assert core.counters["ai_stalls"] == 1


def test_a_lagging_event_loop_is_reported_and_named_as_a_cause() -> None:
    def report_with(lag_counts: list[int] | None) -> dict[str, Any]:
        core = started_core()
        for chunk in range(1, 51):
            core.receive_twilio(media(chunk), chunk * 0.020)
        if lag_counts is not None:
            core.record_loop_lag(lag_counts, 1.0)
        core.receive_twilio(STOP, 1.1)
        report = loose(next(e for e in events(core) if isinstance(e, CallEnded)).report.to_json())
        return report

    # 1000 ticks (10 s of a 10 ms timer), 30 of them over 20 ms: p99 lies in the 20-50 ms bucket
    busy = report_with([600, 800, 950, 960, 970, 995, 1000, 1000, 1000, 1000])
    lag = busy["bridge_host"]["loop_lag"]
    assert lag["ticks"] == 1000 and lag["saturated"] is True
    assert lag["p99_ms"] == pytest.approx(20.0 + 30.0 * (990 - 970) / (995 - 970))
    assert lag["over_5ms_pct"] == pytest.approx(5.0) and lag["over_20ms_pct"] == pytest.approx(3.0)
    assert "event loop lagged (p99 44.0 ms" in busy["assumptions"]["measurement"]

    calm = report_with([990, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000])
    assert calm["bridge_host"]["loop_lag"]["saturated"] is False and "measurement" not in calm["assumptions"]
    assert calm["mos"] == busy["mos"]  # a flag beside the MOS, not a change to it
    assert "bridge_host" not in report_with(None)  # an older capture: nothing claimed


def test_a_bug_met_by_a_per_frame_input_is_counted_named_and_the_call_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-frame inputs' guard (``guarded_frame``) does what every input's does: the bug is counted,
    named in an error Problem, and the next frame is bridged."""
    core = started_core()
    drain(core)
    events(core)
    core.record_sent([object()], 0.01)  # type: ignore[list-item]
    monkeypatch.setattr(core.responses, "speech_stopped", lambda now: 1 / 0)
    core.receive_realtime(ai("input_audio_buffer.speech_stopped", audio_end_ms=10, item_id="u1"), 0.015)
    core.receive_twilio(media(1), 0.02)
    problems = [e for e in events(core) if isinstance(e, Problem)]
    assert [(p.kind, p.level, p.detail.split(": ")[1]) for p in problems] == [
        ("internal_error", "error", "record_sent"), ("internal_error", "error", "receive_realtime")]
    assert "AttributeError" in problems[0].detail and "ZeroDivisionError" in problems[1].detail
    assert core.counters["internal_errors"] == 2
    assert [a["type"] for a in drain(core)] == ["input_audio_buffer.append"]
    assert not core.ended
