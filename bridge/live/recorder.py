"""The live recorder: writes captures (``bridge/protocols/capture.py``) from a background thread.

Off by default. A call is captured when its tenant is listed in ``capture_tenants`` (``*`` for
all) or when its TwiML passes the ``capture=1`` parameter and per-call capture is allowed. Lines
seen before ``start`` (when the decision can be made) wait in memory. The audio path only puts
tuples on a queue; JSON work, PHI pseudonymization and file I/O happen on the writer thread.
Each file is capped (``max_file_bytes``: later lines are dropped, and a warning logged) and the
directory is kept under ``max_total_bytes`` by deleting the oldest captures. Worker processes of
``serve --workers N`` share the directory: a capture in progress is named with its process id, and a
file another worker deleted first is skipped.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.core.config import CallConfig
from bridge.protocols.capture import event_line, header_line, message_line

log = logging.getLogger("mosbridge.capture")

CAPTURE_PARAM = "capture"


@dataclass(frozen=True)
class CapturePolicy:
    directory: Path
    tenants: frozenset[str] = frozenset()  # "*" = every tenant
    per_call: bool = True  # honour customParameters capture=1
    max_file_bytes: int = 50 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024

    def wants(self, tenant: str | None, params: Mapping[str, str]) -> bool:
        if "*" in self.tenants or (tenant is not None and tenant in self.tenants):
            return True
        return self.per_call and params.get(CAPTURE_PARAM, "").lower() in ("1", "true", "yes")


class CallCapture:
    """One call's capture handle, used from the event loop only."""

    def __init__(self, recorder: CaptureRecorder, key: int, header: str) -> None:
        self._recorder = recorder
        self._key = key
        self._pending: list[tuple[Any, ...]] | None = [("header", header)]
        self._on = False

    def message(self, t: float, direction: str, text: str | bytes) -> None:
        self._put(("msg", t, direction, text))

    def event(self, t: float, direction: str, **fields: Any) -> None:
        self._put(("event", t, direction, fields))

    def decide(self, wanted: bool) -> None:
        pending, self._pending = self._pending, None
        self._on = wanted
        if wanted and pending is not None:
            for item in pending:
                self._recorder._q.put((self._key, item))

    def close(self, call_sid: str) -> None:
        if self._on:
            self._recorder._q.put((self._key, ("close", call_sid)))
        self._pending = None
        self._on = False

    def _put(self, item: tuple[Any, ...]) -> None:
        if self._pending is not None:
            self._pending.append(item)
        elif self._on:
            self._recorder._q.put((self._key, item))


class _File:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the writer thread
        self.size = 0
        self.full = False


class CaptureRecorder:
    def __init__(self, policy: CapturePolicy, config: CallConfig, bridge_version: str) -> None:
        self.policy = policy
        self.config = config
        self.bridge_version = bridge_version
        self.written = 0
        self._q: queue.Queue[tuple[int, tuple[Any, ...]] | None] = queue.Queue()
        self._files: dict[int, _File] = {}
        self._count = 0
        self._thread = threading.Thread(target=self._run, name="mosbridge-capture", daemon=True)
        self._thread.start()

    def open_call(self, started_at: str) -> CallCapture:
        self._count += 1
        return CallCapture(self, self._count, header_line(started_at, self.bridge_version, self.config))

    def close(self, timeout: float = 10.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            key, op = item
            try:
                self._handle(key, op)
            except OSError as exc:
                log.error("capture write failed: %s", exc)

    def _handle(self, key: int, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "header":
            self.policy.directory.mkdir(parents=True, exist_ok=True)
            new = _File(self.policy.directory / f"capture-{os.getpid()}-{key}.jsonl.part")
            self._files[key] = new
            self._write(new, op[1])
            return
        f = self._files.get(key)
        if f is None:
            return
        if kind == "msg":
            _, t, direction, text = op
            cfg = self.config
            self._write(f, message_line(t, direction, text, raw_above=cfg.max_message_bytes // 2,
                                        pseudonym_key=cfg.pseudonym_key, phi_keys=cfg.phi_keys))
        elif kind == "event":
            _, t, direction, fields = op
            self._write(f, event_line(t, direction, **fields))
        elif kind == "close":
            self._finish(key, f, op[1])

    def _write(self, f: _File, line: str) -> None:
        if f.full:
            return
        data = line + "\n"
        if f.size + len(data) > self.policy.max_file_bytes:
            f.full = True
            log.warning("capture %s reached %d bytes: later lines are not recorded", f.path.name,
                        self.policy.max_file_bytes)
            return
        f.fh.write(data)
        f.size += len(data)

    def _finish(self, key: int, f: _File, call_sid: str) -> None:
        f.fh.close()
        del self._files[key]
        safe = "".join(c for c in call_sid if c.isalnum() or c in "-_") or "unknown"
        final = f.path.with_name(f"{safe}.jsonl")
        n = 1
        while final.exists():
            n += 1
            final = f.path.with_name(f"{safe}-{n}.jsonl")
        f.path.rename(final)
        self.written += 1
        self._enforce_total()

    def _enforce_total(self) -> None:
        sizes = {}
        for p in self.policy.directory.glob("*.jsonl"):
            try:
                st = p.stat()
            except FileNotFoundError:  # another worker's cleanup came first
                continue
            sizes[p] = (st.st_mtime, st.st_size)
        files = sorted(sizes, key=lambda p: sizes[p][0])
        total = sum(size for _, size in sizes.values())
        while files and total > self.policy.max_total_bytes:
            oldest = files.pop(0)
            total -= sizes[oldest][1]
            try:
                oldest.unlink()
            except FileNotFoundError:
                continue
            log.info("capture %s deleted to keep the directory under %d bytes", oldest.name,
                     self.policy.max_total_bytes)
