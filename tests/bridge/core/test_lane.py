"""``CallCore.take_media``, the caller frame's short way, against the general way it stands for.

The reference is the same core with the short way shut (``_lane = False``): every message then
goes through ``parse_object`` and ``_on_media`` as it did before the lane existed. Both cores get
one hostile stream, driven as the live driver drives them, and must send the AI the same messages
in the same order, raise the same problems and end with the same report."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from bridge.core.call import CallCore
from bridge.core.config import CallConfig
from bridge.core.events import CallEnded, Event, Peer
from quality.meter import DirectionMeter
from tests.bridge.core.test_call import SID, STOP, ai, delta, mark, start

CONFIG = CallConfig(ai_format="pcmu", max_ai_reconnects=50, max_message_burst=10)  # floods trip it
GOOD = base64.b64encode(bytes([0x55] * 160)).decode()


def _media(seq: str, chunk: str, ts: str, payload: str = GOOD, track: str = "inbound") -> str:
    return json.dumps({"event": "media", "sequenceNumber": seq, "streamSid": SID,
                       "media": {"track": track, "chunk": chunk, "timestamp": ts, "payload": payload}})


def _stream(seed: int, n: int = 2500) -> list[tuple[str, str, float]]:
    """(peer, text or AI-leg event, arrival time) as a bridge might see them: mostly in-order frames,
    with loss before Twilio, duplicates, reordering, clock jumps, bad fields and payloads, a flood
    that trips the rate limit, marks, DTMF, AI audio and an AI leg that drops and comes back."""
    rng = random.Random(seed)
    out: list[tuple[str, str, float]] = [("twilio", '{"event":"connected","protocol":"Call","version":"1.0.0"}', 0.0),
                                         ("twilio", start(), 0.001), ("ai_up", "", 0.002)]
    chunk, ts, t = 1, 0, 0.01
    sent: list[str] = []
    for i in range(n):
        t += 0.020 + rng.expovariate(1 / 0.003)
        r = rng.random()
        if r < 0.02:
            ts += 20 * rng.randint(1, 5)  # loss before Twilio: a timestamp step
        elif r < 0.025:
            ts += rng.choice([20000, -2000])  # a clock jump either way
        elif r < 0.03 and sent:
            out.append(("twilio", sent[-1], t))  # a duplicate
            continue
        elif r < 0.035 and len(sent) > 2:
            out.append(("twilio", sent[-2], t))  # late: behind a later frame
            continue
        elif r < 0.04:
            bad = rng.choice([GOOD[:-4], "!!!" + GOOD[3:], GOOD[:-1], base64.b64encode(bytes(80)).decode(), ""])
            out.append(("twilio", _media(str(chunk + 1), str(chunk), str(ts), bad), t))
        elif r < 0.045:
            seq, ch, st = rng.choice([("x", str(chunk), str(ts)), (str(chunk), "1e3", str(ts)),
                                      (str(chunk), str(chunk), "-20"), (str(chunk), "٣", str(ts))])
            out.append(("twilio", _media(seq, ch, st), t))
        elif r < 0.05:
            out.append(("twilio", _media(str(chunk + 1), str(chunk), str(ts), track="outbound"), t))
        elif r < 0.055:
            out.append(("twilio", rng.choice(["{not json", "[1]", json.dumps({"event": "media"}),
                                              mark(f"m{i}"), json.dumps({"event": "nope", "streamSid": SID})]), t))
        elif r < 0.058:
            for _ in range(rng.randint(20, 60)):  # a flood at one instant: the token bucket runs dry
                text = _media(str(chunk + 1), str(chunk), str(ts))
                sent.append(text)
                out.append(("twilio", text, t))
                chunk, ts = chunk + 1, ts + 20
            continue
        elif r < 0.06:
            out.append(("ai", delta(f"r{i}", f"it{i}", rng.choice([100, 180, 333]), i), t))
        elif r < 0.0615:
            out.append(("ai_down", "", t))
            out.append(("ai_up", "", t + rng.uniform(0.05, 0.5)))
            continue
        elif r < 0.063:
            out.append(("ai", ai("input_audio_buffer.speech_started", audio_start_ms=ts, item_id=f"u{i}"), t))
        text = _media(str(chunk + 1), str(chunk), str(ts), base64.b64encode(rng.randbytes(160)).decode())
        sent.append(text)
        out.append(("twilio", text, t))
        chunk, ts = chunk + 1, ts + 20
    out.append(("twilio", STOP, t + 0.02))
    return sorted(out, key=lambda e: e[2])


def _drive(core: CallCore, stream: list[tuple[str, str, float]], short_way: bool) -> dict[str, Any]:
    """Feed ``core`` as ``bridge/live/driver.py`` does, each send ``waited`` after its input."""
    to_ai: list[str] = []
    others: list[tuple[str, str]] = []
    events: list[Event] = []
    lane_frames = 0

    def flush(now: float) -> None:
        items = core.data_to_send()
        to_ai.extend(o.text for o in items if o.peer is Peer.REALTIME)
        others.extend((o.peer.value, o.text) for o in items if o.peer is not Peer.REALTIME)
        core.record_sent(items, now + 0.0007)
        while (e := core.next_event()) is not None:
            events.append(e)

    for peer, text, now in stream:
        if peer == "twilio":
            if short_way:
                append = core.take_media(text, now)
                if append is not None:
                    lane_frames += 1
                    to_ai.append(append)
                    core.record_frame_sent(0.0007)
                    assert not core.data_to_send() and core.next_event() is None, "a lane frame made more"
                    continue
            else:
                core.receive_twilio(text, now)
        elif peer == "ai":
            core.receive_realtime(text, now)
        elif peer == "ai_up":
            core.realtime_connected(now)
        else:
            core.realtime_closed(now, "test: dropped")
        flush(now)
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 1
    return {"to_ai": to_ai, "to_twilio": others, "lane_frames": lane_frames,
            "problems": [(type(e).__name__, getattr(e, "kind", None), getattr(e, "detail", None))
                         for e in events if not isinstance(e, CallEnded)],
            "report": ended[0].report.stamped("s", "e").to_json()}


@pytest.mark.parametrize("seed", range(5))
def test_the_short_way_sends_raises_and_reports_exactly_what_the_general_way_does(seed: int) -> None:
    stream = _stream(seed)
    general = CallCore(CONFIG, now=0.0)
    general._lane = False
    short = CallCore(CONFIG, now=0.0)
    want = _drive(general, stream, short_way=False)
    got = _drive(short, stream, short_way=True)
    assert want["lane_frames"] == 0
    media = sum(1 for peer, text, _ in stream if peer == "twilio" and '"event": "media"' in text)
    assert got["lane_frames"] > 0.5 * media, "most frames should take the short way"
    counters = want["report"]["counters"]
    for name in ("bad_base64", "bad_frame", "bad_message", "bad_json", "rate_limited", "duplicate_frames",
                 "wrong_track", "frames_held_for_ai"):
        assert counters.get(name, 0) > 0, f"the stream never exercised {name}"
    for key in ("to_ai", "to_twilio", "problems", "report"):
        assert got[key] == want[key], key


def test_the_short_way_is_shut_where_its_case_cannot_happen() -> None:
    """Transcoded audio (``pcm24k``) and untimed input always take the general way."""
    for core in (CallCore(CallConfig(ai_format="pcm24k"), now=0.0), CallCore(CallConfig(), now=0.0, timed=False)):
        core.receive_twilio(start(), 0.001)
        core.realtime_connected(0.002)
        core.data_to_send()
        assert core.take_media(_media("2", "1", "0"), 0.02) is None
        assert [o.text[:40] for o in core.data_to_send()] == ['{"type":"input_audio_buffer.append","aud']


def test_a_bug_in_the_short_way_is_counted_and_the_next_frame_is_bridged(monkeypatch: pytest.MonkeyPatch) -> None:
    core = CallCore(CallConfig(ai_format="pcmu"), now=0.0)
    core.receive_twilio(start(), 0.001)
    core.realtime_connected(0.002)
    core.receive_twilio(_media("2", "1", "0"), 0.02)  # the first frame anchors the meters (general way)
    core.data_to_send()
    with monkeypatch.context() as m:
        m.setattr(DirectionMeter, "in_order", lambda *a: 1 / 0)
        assert core.take_media(_media("3", "2", "20"), 0.04) is None
    assert core.counters["internal_errors"] == 1
    core.receive_twilio(_media("4", "3", "40"), 0.06)  # chunk 2 was never metered: a one-frame gap, concealed
    sent = [o.text for o in core.data_to_send()]
    assert len(sent) == 2 and sent[-1] == '{"type":"input_audio_buffer.append","audio":"' + GOOD + '"}'
    assert core.counters["concealed_frames"] == 1
