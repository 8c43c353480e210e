"""The capture format: one call as JSON Lines, enough to replay it to the same report.

Version 2 (what the bridge writes) is version 1 without ``ai_audio_in`` lines (below), which only
version-1 captures hold and only ``bridge/replay/legacy.py`` replays; a version-2 capture holding
one is refused. Every version ever written is still read.

Version 1:
- Line 1, the header: ``{"capture": 1, "started_at": "<ISO 8601 UTC>", "bridge_version": ...,
  "settings": {<CallConfig fields that affect the report>}}``.
- Then one line per message or measurement, in the order the call core saw them, each with
  ``t`` = seconds since the capture started (the monotonic clock the core was given) and ``dir``:
  ``twilio_in`` / ``twilio_out`` / ``ai_in`` / ``ai_out`` with ``msg`` (the message as JSON) or,
  for input that is not a JSON object or is large, ``raw`` (the text as received);
  ``twilio_rtt`` / ``ai_rtt`` with ``rtt_ms`` (a WebSocket ping round trip);
  ``timer`` (the core's timer fired); ``ai_connected``; ``ai_closed`` with ``reason``;
  ``twilio_closed``; ``end`` with ``reason`` (the driver ended the call, e.g. shutdown).
  The WebRTC leg (``opus16k``) adds ``ai_out`` lines with ``b64`` (an Opus packet sent on the
  track), ``ai_packet_in`` with ``seq`` and ``b64`` (an RTP packet of the AI's audio: its
  sequence number and Opus payload) and ``ai_rtp`` with ``rtp`` (the leg's RTP/RTCP figures).
  Captures from before the bridge decoded RTP itself have ``ai_audio_in`` with ``b64`` instead
  (20 ms of the AI's audio as aiortc decoded it: 48 kHz mono 16-bit PCM); they replay too.
  ``host_lag`` with ``counts``: the bridge's event-loop lag since the call began, as cumulative
  tick counts per ``quality.lag.LAG_BOUNDS_S`` bucket (every ping period; older captures have none).
- PHI: ids in ``start.customParameters`` are pseudonymized before they are written, whatever
  their type or the message's size; a raw line that names a PHI key is written as
  ``raw_withheld`` (its size) instead, and replays as a malformed message.

A plain Twilio log (one raw Media Streams message per line, no header, no ``t``) is read too;
its arrival times are unknown, so replay reports jitter as not measured.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from bridge.core.config import CallConfig
from bridge.core.tags import pseudonymize
from bridge.protocols import compact_json
from quality.lag import LAG_BOUNDS_S

VERSION: Final = 2
LEGACY_DIRS: Final = {"ai_audio_in": 1}  # a line kind, and the last version that may hold it
MESSAGE_DIRS: Final = frozenset({"twilio_in", "twilio_out", "ai_in", "ai_out"})
EVENT_DIRS: Final = frozenset({"twilio_rtt", "ai_rtt", "timer", "ai_connected", "ai_closed", "twilio_closed", "end"})
BINARY_DIRS: Final = frozenset({"ai_out", "ai_packet_in", "ai_audio_in"})
# Settings that change a report; the pseudonym key is a secret and is never written.
_NOT_WRITTEN: Final = frozenset({"pseudonym_key"})



class CaptureError(ValueError):
    """A capture file that cannot be read; names the line."""

    def __init__(self, line_no: int, message: str) -> None:
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no


@dataclass(frozen=True)
class Record:
    t: float | None  # None: a plain Twilio log line (arrival unknown)
    dir: str
    text: str | None = None  # the message as the core receives it (twilio_*/ai_*)
    rtt_ms: float | None = None
    reason: str | None = None
    line_no: int = 0
    audio: bytes | None = None  # ai_out on the WebRTC track, ai_packet_in, ai_audio_in
    seq: int | None = None  # ai_packet_in
    rtp: dict[str, Any] | None = None  # ai_rtp
    counts: tuple[int, ...] | None = None  # host_lag


@dataclass
class Capture:
    header: dict[str, Any]
    records: list[Record]
    plain: bool = False  # a plain Twilio log: no header, no timing
    warnings: list[str] = field(default_factory=list)

    def config(self) -> CallConfig:
        return config_from_header(self.header)


def config_settings(config: CallConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(CallConfig):
        if f.name in _NOT_WRITTEN:
            continue
        value = getattr(config, f.name)
        out[f.name] = sorted(value) if isinstance(value, frozenset) else value
    return out


def config_from_header(header: Mapping[str, Any]) -> CallConfig:
    settings = dict(header.get("settings") or {})
    known = {f.name for f in fields(CallConfig)} - _NOT_WRITTEN
    kwargs = {k: v for k, v in settings.items() if k in known}
    if "phi_keys" in kwargs:
        kwargs["phi_keys"] = frozenset(kwargs["phi_keys"])
    kwargs.setdefault("outbound_chunk_ms", 0)  # written before it was a setting: a message per frame
    return CallConfig(**kwargs)


def header_line(started_at: str, bridge_version: str, config: CallConfig) -> str:
    return compact_json.dumps({"capture": VERSION, "started_at": started_at, "bridge_version": bridge_version,
                   "settings": config_settings(config)})


def message_line(t: float, direction: str, text: str | bytes, *, raw_above: int,
                 pseudonym_key: bytes | None = None, phi_keys: Iterable[str] = ()) -> str:
    """One message line: ``msg`` for a JSON object of at most ``raw_above`` bytes, else ``raw``.

    Replay re-serializes ``msg`` compactly, so only messages far below the core's size limit
    are stored parsed; the rest keep their exact text. PHI: with a ``pseudonym_key``, a
    ``start`` is parsed and pseudonymized whatever its size, and a Twilio text kept raw that
    names a PHI key (it cannot be pseudonymized: not JSON, or not an object) is withheld: the
    line says ``raw_withheld`` with its size, and replays as a malformed message.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    obj: Any = None
    phi = frozenset(phi_keys)
    if len(text) <= raw_above or (pseudonym_key is not None and '"start"' in text):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
    if not isinstance(obj, dict) or (len(text) > raw_above and obj.get("event") != "start"):
        if pseudonym_key is not None and direction == "twilio_in" and _names_phi(text, phi):
            return compact_json.dumps({"t": t, "dir": direction, "raw_withheld": len(text)})
        return compact_json.dumps({"t": t, "dir": direction, "raw": text})
    if pseudonym_key is not None and obj.get("event") == "start":
        _pseudonymize_start(obj, pseudonym_key, phi)
    return compact_json.dumps({"t": t, "dir": direction, "msg": obj})


def _names_phi(text: str, phi_keys: frozenset[str]) -> bool:
    """Whether ``text`` holds a PHI key as a JSON key or string ("patient_id", any case)."""
    lowered = text.lower()
    return any(f'"{key}"' in lowered for key in phi_keys)


def _pseudonymize_start(obj: dict[str, Any], key: bytes, phi_keys: frozenset[str]) -> None:
    """PHI values become pseudonyms. One that is not a string (the core refuses such a start)
    becomes ``{"pseudonym": ...}`` of its JSON text, and parameters that are not an object
    ``[pseudonym]``: no type or size lets a clear value through, and replay still refuses it."""
    start = obj.get("start")
    params = start.get("customParameters") if isinstance(start, dict) else None
    if isinstance(params, dict):
        for name, value in params.items():
            if name.lower() in phi_keys:
                params[name] = (pseudonymize(value, key) if isinstance(value, str)
                                else {"pseudonym": pseudonymize(json.dumps(value), key)})
    elif params is not None and isinstance(start, dict):
        start["customParameters"] = [pseudonymize(json.dumps(params), key)]


def event_line(t: float, direction: str, **fields_: Any) -> str:
    return compact_json.dumps({"t": t, "dir": direction, **fields_})


# ---------------------------------------------------------------------------------- reading


def read_capture(path: str | Path) -> Capture:
    with open(path, encoding="utf-8") as fh:
        return parse_capture(fh)


def parse_capture(lines: Iterable[str]) -> Capture:
    """Parse a capture (or a plain Twilio log). A truncated last line is dropped with a warning;
    any other bad line raises :class:`CaptureError` naming its line number."""
    numbered = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise CaptureError(1, "empty file: neither a capture nor a Twilio log")
    warnings: list[str] = []
    parsed: list[tuple[int, dict[str, Any]]] = []
    for pos, (i, line) in enumerate(numbered):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if pos == len(numbered) - 1 and not line.endswith("\n"):
                warnings.append(f"line {i}: truncated last line ignored ({exc.msg})")
                break
            raise CaptureError(i, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise CaptureError(i, "not a JSON object")
        parsed.append((i, obj))
    first_no, first = parsed[0]
    if "capture" in first:
        version = first["capture"]
        if not isinstance(version, int) or version < 1:
            raise CaptureError(first_no, f"bad capture version {version!r}")
        if version > VERSION:
            raise CaptureError(first_no, f"capture version {version} is newer than this mosbridge reads ({VERSION})")
        records = [_record(i, o) for i, o in parsed[1:]]
        for r in records:
            if LEGACY_DIRS.get(r.dir, version) < version:
                raise CaptureError(r.line_no or 0, f"a {r.dir} line in a version-{version} capture "
                                   f"(only version {LEGACY_DIRS[r.dir]} and older hold them)")
        return Capture(first, records, warnings=warnings)
    if "event" in first:
        return Capture({}, [_plain_record(i, o) for i, o in parsed], plain=True, warnings=warnings)
    raise CaptureError(first_no, "neither a capture header ({\"capture\": 1, ...}) nor a Twilio message")


def _record(i: int, o: dict[str, Any]) -> Record:
    t, d = o.get("t"), o.get("dir")
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise CaptureError(i, f"'t' must be a number of seconds, got {t!r}")
    if d in BINARY_DIRS and "b64" in o:
        try:
            audio = base64.b64decode(o["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise CaptureError(i, f"a {d} line's 'b64' is not base64") from None
        seq = o.get("seq")
        if d == "ai_packet_in" and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 65536):
            raise CaptureError(i, f"an ai_packet_in line needs 'seq' (an RTP sequence number), got {seq!r}")
        return Record(float(t), d, text="", audio=audio, seq=seq, line_no=i)
    if d == "ai_rtp":
        rtp = o.get("rtp")
        if not isinstance(rtp, dict):
            raise CaptureError(i, "an ai_rtp line needs 'rtp' (an object)")
        return Record(float(t), d, rtp=rtp, line_no=i)
    if d == "host_lag":
        counts = o.get("counts")
        if not (isinstance(counts, list) and len(counts) == len(LAG_BOUNDS_S)
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
                and counts == sorted(counts)):
            raise CaptureError(i, f"a host_lag line needs 'counts': {len(LAG_BOUNDS_S)} cumulative tick counts")
        return Record(float(t), d, counts=tuple(counts), line_no=i)
    if d in MESSAGE_DIRS:
        if "msg" in o and isinstance(o["msg"], dict):
            return Record(float(t), d, text=compact_json.dumps(o["msg"]), line_no=i)
        if isinstance(o.get("raw"), str):
            return Record(float(t), d, text=o["raw"], line_no=i)
        if "raw_withheld" in o:  # held back for PHI (see message_line): replays as malformed
            return Record(float(t), d, text="", line_no=i)
        raise CaptureError(i, f"a {d} line needs 'msg' (an object) or 'raw' (a string)")
    if d in ("twilio_rtt", "ai_rtt"):
        rtt = o.get("rtt_ms")
        if isinstance(rtt, bool) or not isinstance(rtt, (int, float)):
            raise CaptureError(i, f"'rtt_ms' must be a number, got {rtt!r}")
        return Record(float(t), d, rtt_ms=float(rtt), line_no=i)
    if d in EVENT_DIRS:
        reason = o.get("reason")
        return Record(float(t), d, reason=str(reason) if reason is not None else None, line_no=i)
    raise CaptureError(i, f"unknown 'dir' {d!r}")


def _plain_record(i: int, o: dict[str, Any]) -> Record:
    if "event" not in o:
        raise CaptureError(i, "a Twilio log line needs an 'event'")
    return Record(None, "twilio_in", text=compact_json.dumps(o), line_no=i)
