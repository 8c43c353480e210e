"""The replay driver: a capture through the call core, on the recorded clock, as fast as the CPU allows.

It applies exactly the inputs the live driver applied, with the same floats (``bridge/core/inputs.py``:
the live driver records each input as it applies it, and this reads them back), so a capture of a
live call yields the live call's report, field for field, but for the wall-clock dates.
Outputs are matched to the capture's ``*_out`` lines in order, which gives back the send times
behind the bridge-latency figures.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from bridge.codecs import Delay, Transcoder
from bridge.core.call import CallCore
from bridge.core.events import CallEnded, Outgoing, Peer
from bridge.core.inputs import AI_INPUTS, from_record
from bridge.core.report import Report
from bridge.protocols.capture import Capture
from bridge.replay.legacy import adapter_for

END_OF_CAPTURE = "end of capture"


class MetricsOnlyTranscoder(Transcoder):
    """No audio work at all: replay measures the caller's stream and nothing is sent on."""

    fmt = "none"
    ai_rate = 8000
    delay_to_ai = Delay(0.0, 0.0)
    delay_to_caller = Delay(0.0, 0.0)

    def to_ai(self, frame: bytes) -> list[bytes]:
        return []

    def conceal_to_ai(self) -> list[bytes]:
        return []

    def to_caller(self, payload: bytes) -> list[bytes]:
        return []

    def lost_from_ai(self, next_payload: bytes | None = None) -> list[bytes]:
        return []

    def flush_to_caller(self) -> list[bytes]:
        return []


@dataclass
class ReplayResult:
    report: Report
    warnings: list[str] = field(default_factory=list)
    records: int = 0
    duration_s: float = 0.0


def replay(capture: Capture, *, metrics_only: bool = False) -> ReplayResult:
    """Run ``capture`` through a fresh call core and return its report; the capture's version
    picks the rules for inputs the live core no longer takes (``bridge/replay/legacy.py``)."""
    config = capture.config()
    adapter = adapter_for(capture.header.get("capture"))
    core = CallCore(config, now=0.0, transcoder=MetricsOnlyTranscoder() if metrics_only else adapter.transcoder(config),
                    timed=not capture.plain)
    warnings = list(capture.warnings)
    if capture.plain:
        warnings.append("plain Twilio log: arrival times unknown, jitter not measured; loss and gaps are exact")
        core.realtime_connected(0.0)
    # Outputs to each peer leave in order, but the live driver sends the two peers' from
    # separate tasks: match each *_out line against its own peer's queue.
    pending: dict[Peer, deque[Outgoing]] = {Peer.TWILIO: deque(), Peer.REALTIME: deque()}
    report: Report | None = None
    t = 0.0
    for rec in capture.records:
        t = rec.t if rec.t is not None else _media_time(rec.text, t)
        inp = from_record(rec)
        if inp is None:  # a *_out line: what the live driver sent then gives the send time
            queue = pending[Peer.TWILIO if rec.dir == "twilio_out" else Peer.REALTIME]
            if queue:
                core.record_sent((queue.popleft(),), t)
            continue
        if metrics_only and isinstance(inp, AI_INPUTS):
            continue
        adapter.apply(core, inp, t)
        out = core.data_to_send()
        if not metrics_only and not capture.plain:
            for item in out:
                pending[item.peer].append(item)
        report = _take_report(core) or report
    if not core.ended:
        core.end(t, END_OF_CAPTURE)
        warnings.append(f"the capture ends without a hangup: the call was ended at t={t:.3f} s")
    report = _take_report(core) or report
    assert report is not None
    if metrics_only:
        report = report.with_assumption("replay", "metrics only: no transcoding, AI side skipped")
    return ReplayResult(report, warnings, len(capture.records), t)


def _take_report(core: CallCore) -> Report | None:
    found = None
    while (event := core.next_event()) is not None:
        if isinstance(event, CallEnded):
            found = event.report
    return found


def _media_time(text: str | None, last: float) -> float:
    """For a plain Twilio log: the media timestamp stands in for the unknown arrival time."""
    if text is None or '"media"' not in text:
        return last
    try:
        ts = json.loads(text)["media"]["timestamp"]
        return max(last, int(ts) / 1000.0)
    except (ValueError, KeyError, TypeError):
        return last
