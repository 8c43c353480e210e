"""The Realtime stand-in's view of each session, for the load rig to set beside the callers' view.

With ``fake-realtime --stamps FILE`` every session notes when each tagged caller frame arrived
(``input_audio_buffer.append``) and when each output delta left, and tags its mu-law answers
(``bridge.stand_ins.audio_tags``); every second, and at the session's end, it appends a JSON line
with what is new to FILE (so a peer that never closes its session still shows). Stamps
are ``time.monotonic()`` (CLOCK_MONOTONIC on Linux: one clock for every process on the machine),
so they compare with the callers' stamps in another process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bridge.stand_ins.audio_tags import find_caller_tags, tag_ai_audio


class SessionStamps:
    """One session's stamps. ``clock`` is injected (the driver passes ``time.monotonic``)."""

    def __init__(self, session: int, clock: Callable[[], float]) -> None:
        self.session = session
        self._clock = clock
        self.inputs: list[tuple[int, int, int, float]] = []  # (nonce, call, frame, arrived)
        self.outputs: list[tuple[int, int, float]] = []  # (stream start, stream end, emitted)
        self.events_out = 0
        self._events_in = 0  # reported so far
        self._events_out = 0
        self._base = 0  # where the response under way starts in the output stream
        self._sent = 0  # output stream bytes sent as deltas so far

    def input(self, data: bytes) -> None:
        """Caller audio as received (mu-law); only tagged frames are noted."""
        tags = find_caller_tags(data)
        if tags:
            now = self._clock()
            self.inputs += [(t.nonce, t.call, t.frame, now) for t in tags]

    def tag_response(self, audio: bytes) -> bytes:
        """A new response's mu-law audio, tagged at its place in the output stream."""
        self._base = self._sent
        return tag_ai_audio(audio, self.session, self._base)

    def delta(self, start: int, end: int) -> None:
        """The response's bytes [start, end) are being sent now."""
        self.outputs.append((self._base + start, self._base + end, self._clock()))
        self._sent = self._base + end

    def take(self, events_in: int) -> dict[str, Any] | None:
        """What is new since the last take, as a record (None: nothing); ``events_in`` counts
        the client events so far."""
        if not self.inputs and not self.outputs and events_in == self._events_in \
                and self.events_out == self._events_out:
            return None
        record = {"session": self.session, "events_in": events_in - self._events_in,
                  "events_out": self.events_out - self._events_out, "inputs": self.inputs, "outputs": self.outputs}
        self.inputs, self.outputs = [], []
        self._events_in, self._events_out = events_in, self.events_out
        return record


class StampLog:
    """Appends sessions' new stamps to a JSON Lines file, a line per session and write; a
    session's lines add up (``merge_records``)."""

    interval_s = 1.0  # how often the driver writes the live sessions' news

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self._next = 0

    def session(self) -> SessionStamps:
        self._next += 1
        return SessionStamps(self._next, self.clock)

    def write(self, sessions: list[tuple[SessionStamps, int]]) -> None:
        """Each (session, its client events so far)'s news."""
        # orjson: the stdlib encoder took 5 % of a load rig's CPU; its floats read back the same
        lines = [orjson.dumps(r) + b"\n" for s, n in sessions if (r := s.take(n)) is not None]
        if lines:
            with self.path.open("ab") as f:
                f.write(b"".join(lines))


def merge_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per session from its lines."""
    merged: dict[int, dict[str, Any]] = {}
    for r in records:
        m = merged.setdefault(r["session"], {"session": r["session"], "events_in": 0, "events_out": 0,
                                             "inputs": [], "outputs": []})
        m["events_in"] += r["events_in"]
        m["events_out"] += r["events_out"]
        m["inputs"] += r["inputs"]
        m["outputs"] += r["outputs"]
    return list(merged.values())


def read_stamps(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The whole records in ``path`` from byte ``offset`` on, and the offset after the last one
    (a line still being written is left for the next read)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    records = [orjson.loads(line) for line in data[:end].splitlines() if line.strip()]
    return records, offset + end
