"""What the callers saw, set beside the Realtime stand-in's stamps: latency each way and audio
still queued at hangup, measured outside the bridge so its saturation cannot hide in its own stamps.

pcmu only: the bytes pass the bridge unchanged, so tags (``bridge.stand_ins.audio_tags``) in the
callers' frames and in the stand-in's answers say which frame arrived where, however the bridge
batches or re-frames them. Stamps are ``time.monotonic()`` in both processes (CLOCK_MONOTONIC,
system-wide on Linux). Caller → AI: the caller's stamp before it writes a frame to the socket, to
the stand-in's when the ``input_audio_buffer.append`` carrying it is handled. AI → caller: the
stand-in's stamp when it emits the delta holding a tag's last byte, to the caller's when it reads
the media message completing the tag (one tag every 20 ms of answer).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.loadtest.percentiles import percentiles
from bridge.stand_ins.audio_tags import AI_TAG_LEN, find_ai_tags
from bridge.stand_ins.stamp_log import merge_records

MULAW_BYTES_PER_MS = 8


class TaggedCallerTap:
    """A ``CallerTap`` for one call: its frames' send stamps and the AI tags it received."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.sent_at: dict[int, float] = {}  # frame index (media ms / 20) -> stamp
        self.tags: list[tuple[int, int, float]] = []  # (session, tag offset, received)
        self.hangup_at: float | None = None
        self.ends_at_hangup: dict[int, int] = {}  # session -> its output stream received up to, at hangup
        self._tail = b""
        self._pos = 0  # audio bytes received so far
        self._anchor: tuple[int, int, int] | None = None  # (session, offset, position in our stream)
        self._ends: dict[int, int] = {}

    def sent(self, media_ms: int) -> None:
        self.sent_at[media_ms // 20] = self._clock()

    def received(self, audio: bytes) -> None:
        now = self._clock()
        data = self._tail + audio  # a tag may straddle two messages
        base = self._pos - len(self._tail)
        for pos, tag in find_ai_tags(data):
            self.tags.append((tag.session, tag.offset, now))
            self._anchor = (tag.session, tag.offset, base + pos)
        self._pos += len(audio)
        self._tail = data[-(AI_TAG_LEN - 1):]
        if self._anchor is not None:
            session, offset, at = self._anchor
            self._ends[session] = offset + self._pos - at

    def hung_up(self) -> None:
        self.hangup_at = self._clock()
        self.ends_at_hangup = dict(self._ends)


@dataclass(frozen=True)
class CallerView:
    """Per direction p50/p99/max/mean in ms (None: nothing to measure), with the counts behind them."""

    to_ai_ms: dict[str, float] | None = None
    to_caller_ms: dict[str, float] | None = None
    queued_at_hangup_ms: dict[str, float] | None = None  # per call
    counts: dict[str, int] = field(default_factory=dict)
    not_measured: str | None = None  # why there are no figures
    # the same two latencies over the frames sent in the steady window (every call up, none hung up)
    steady_to_ai_ms: dict[str, float] | None = None
    steady_to_caller_ms: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"to_ai_ms": self.to_ai_ms, "to_caller_ms": self.to_caller_ms,
                "steady_to_ai_ms": self.steady_to_ai_ms, "steady_to_caller_ms": self.steady_to_caller_ms,
                "queued_at_hangup_ms": self.queued_at_hangup_ms, "counts": self.counts,
                "not_measured": self.not_measured}


def not_measured(reason: str) -> CallerView:
    return CallerView(not_measured=reason)


def caller_view(taps: dict[int, TaggedCallerTap], nonce: int, records: Iterable[dict[str, Any]],
                steady: tuple[float, float] | None = None) -> CallerView:
    """Join the callers' taps (by call index) with the stand-in's session records of this run
    (``bridge.stand_ins.stamp_log``): sessions belong to the call whose tagged frames they got.
    ``steady`` (from, to), on the stamps' clock, also gives the latencies of what was sent in that
    window: a capacity figure without the ramp's set-ups and the hangups' reports in it."""
    lo, hi = steady if steady is not None else (float("inf"), float("-inf"))
    arrivals: dict[int, list[tuple[int, float]]] = defaultdict(list)  # call -> (frame, arrived)
    outputs: dict[int, list[tuple[int, int, float]]] = {}  # session -> deltas in stream order
    sessions_of: dict[int, set[int]] = defaultdict(set)
    messages = {"ai_received": 0, "ai_sent": 0}
    for rec in merge_records(list(records)):
        calls = {c for n, c, _, _ in rec["inputs"] if n == nonce}
        if not calls:
            continue
        for n, c, frame, t in rec["inputs"]:
            if n == nonce:
                arrivals[c].append((frame, t))
        session = int(rec["session"])
        outputs[session] = sorted((int(a), int(b), float(t)) for a, b, t in rec["outputs"])
        messages["ai_received"] += int(rec["events_in"])
        messages["ai_sent"] += int(rec["events_out"])
        for c in calls:
            sessions_of[c].add(session)
    to_ai: list[float] = []
    to_caller: list[float] = []
    steady_to_ai: list[float] = []
    steady_to_caller: list[float] = []
    queued: list[float] = []
    tags_received = 0
    for call, tap in taps.items():
        for frame, t in arrivals.get(call, []):
            sent = tap.sent_at.get(frame)
            if sent is not None:
                to_ai.append(1000.0 * (t - sent))
                if lo <= sent <= hi:
                    steady_to_ai.append(to_ai[-1])
        mine = sessions_of.get(call, set())
        for session, offset, t in tap.tags:
            deltas = outputs.get(session) if session in mine else None
            if not deltas:
                continue
            last = offset + AI_TAG_LEN - 1
            k = bisect.bisect_right(deltas, (last, float("inf"), float("inf"))) - 1
            if k >= 0 and deltas[k][0] <= last < deltas[k][1]:
                to_caller.append(1000.0 * (t - deltas[k][2]))
                tags_received += 1
                if lo <= deltas[k][2] <= hi:
                    steady_to_caller.append(to_caller[-1])
        if tap.hangup_at is not None:
            hangup = tap.hangup_at
            behind = 0
            for session in mine:
                sent_end = max((b for _, b, t in outputs[session] if t <= hangup), default=0)
                behind += max(0, sent_end - tap.ends_at_hangup.get(session, 0))
            queued.append(behind / MULAW_BYTES_PER_MS)
    counts = {"frames_sent": sum(len(t.sent_at) for t in taps.values()), "frames_matched": len(to_ai),
              "tags_matched": tags_received, "calls": len(taps), "calls_with_sessions": len(sessions_of),
              **messages}
    return CallerView(to_ai_ms=percentiles(to_ai) or None, to_caller_ms=percentiles(to_caller) or None,
                      queued_at_hangup_ms=percentiles(queued) or None, counts=counts,
                      steady_to_ai_ms=percentiles(steady_to_ai) or None,
                      steady_to_caller_ms=percentiles(steady_to_caller) or None)
