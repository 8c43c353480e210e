"""The input vocabulary: every core input survives a capture line and back, and applies."""

from __future__ import annotations

import json
import typing

import pytest

from bridge.core.call import CallCore
from bridge.core.config import CallConfig
from bridge.core.events import CallEnded
from bridge.core.inputs import (
    AiAudioIn,
    AiClosed,
    AiConnected,
    AiIn,
    AiPacketIn,
    AiRtp,
    AiRtt,
    End,
    HostLag,
    Input,
    Timer,
    TwilioClosed,
    TwilioIn,
    TwilioRtt,
    capture_fields,
    from_record,
)
from bridge.protocols import compact_json
from bridge.protocols.capture import event_line, header_line, message_line, parse_capture
from bridge.replay.legacy import apply_v1 as apply  # every input kind, ai_audio_in (old captures) too
from quality.lag import LAG_BOUNDS_S
from tests.bridge.core.test_call import media, start

EXAMPLES: list[Input] = [
    TwilioIn(compact_json.dumps(json.loads(start()))), TwilioIn(compact_json.dumps(json.loads(media(1)))),
    AiIn('{"type":"session.updated","event_id":"e","session":{}}'),
    AiPacketIn(65535, b"\xf8\xff\xfe"), AiAudioIn(bytes(1920)), Timer(), TwilioRtt(12.5), AiRtt(80.25),
    AiConnected(), AiClosed("close code 1006"), TwilioClosed(), End("shutdown"),
    AiRtp({"packets_received": 10, "jitter_ms": 1.5, "rtt_ms": None}),
    HostLag(tuple(range(len(LAG_BOUNDS_S)))),
]


def test_every_input_kind_has_an_example() -> None:
    kinds = set(typing.get_args(Input))
    assert {type(i) for i in EXAMPLES} == kinds


def test_every_input_survives_its_capture_line() -> None:
    # a version-1 header: the one version that may hold every kind of line (ai_audio_in included)
    lines = [header_line("2026-01-01T00:00:00.000Z", "test", CallConfig()).replace('"capture":2', '"capture":1', 1)]
    for k, inp in enumerate(EXAMPLES):
        t = 0.001 * k
        if isinstance(inp, TwilioIn | AiIn):
            lines.append(message_line(t, inp.DIR, inp.text, raw_above=1 << 20))
        else:
            lines.append(event_line(t, inp.DIR, **capture_fields(inp)))
    capture = parse_capture(line + "\n" for line in lines)
    back = [from_record(r) for r in capture.records]
    assert back == EXAMPLES


@pytest.mark.parametrize("ai_format", ["pcmu", "opus16k"])
def test_every_input_applies_and_the_call_ends_with_a_report(ai_format: str) -> None:
    core = CallCore(CallConfig(ai_format=ai_format), now=0.0)  # type: ignore[arg-type]
    for k, inp in enumerate(EXAMPLES):
        apply(core, inp, 0.02 * k)
    assert core.ended and core.counters.get("internal_errors", 0) == 0
    events = []
    while (e := core.next_event()) is not None:
        events.append(e)
    [ended] = [e for e in events if isinstance(e, CallEnded)]
    assert ended.reason == "twilio_closed"
