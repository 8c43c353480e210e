"""The Realtime stand-in's view of each session, for the load rig to set beside the callers' view.

With ``fake-realtime --stamps FILE`` every session notes when each tagged caller frame arrived
(``input_audio_buffer.append``) and when each output delta left, and tags its mu-law answers
(``bridge.stand_ins.audio_tags``); at the session's end it appends one JSON line to FILE. Stamps
are ``time.monotonic()`` (CLOCK_MONOTONIC on Linux: one clock for every process on the machine),
so they compare with the callers' stamps in another process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.stand_ins.audio_tags import find_caller_tags, tag_ai_audio


class SessionStamps:
    """One session's stamps. ``clock`` is injected (the driver passes ``time.monotonic``)."""

    def __init__(self, session: int, clock: Callable[[], float]) -> None:
        self.session = session
        self._clock = clock
        self.inputs: list[tuple[int, int, int, float]] = []  # (nonce, call, frame, arrived)
        self.outputs: list[tuple[int, int, float]] = []  # (stream start, stream end, emitted)
        self.events_out = 0
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

    def record(self, events_in: int) -> dict[str, Any]:
        return {"session": self.session, "events_in": events_in, "events_out": self.events_out,
                "inputs": self.inputs, "outputs": self.outputs}


class StampLog:
    """Appends each finished session's record to a JSON Lines file (one line per session)."""

    def __init__(self, path: Path, clock: Callable[[], float]) -> None:
        self.path = path
        self.clock = clock
        self._next = 0

    def session(self) -> SessionStamps:
        self._next += 1
        return SessionStamps(self._next, self.clock)

    def write(self, stamps: SessionStamps, events_in: int) -> None:
        if not stamps.inputs and not stamps.outputs:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(stamps.record(events_in), separators=(",", ":")) + "\n")


def read_stamps(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The whole records in ``path`` from byte ``offset`` on, and the offset after the last one
    (a line still being written is left for the next read)."""
    if not path.exists():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return records, offset + end
