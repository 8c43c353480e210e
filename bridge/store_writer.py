"""Writes call reports off the audio path: a queue in front of one thread that owns the store.

``submit`` only puts the report on a ``queue.Queue``; a daemon thread opens the store, writes
each report (retrying with exponential backoff), and POSTs it to an optional webhook. A report
that still cannot be written is appended as one JSON line to ``<db path>.spill.jsonl``; the next
writer re-imports that file when it starts and removes it, so a full disk or a locked database
costs delay, not reports. Failures are logged on ``mosbridge.store`` with the call_sid.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.store import BUSY_TIMEOUT_S, ReportStore, open_store, spill_path, sqlite_path

log = logging.getLogger("mosbridge.store")

WRITE_ATTEMPTS = 4  # one write and three retries
BACKOFF_S = 0.1  # before retry n: BACKOFF_S * 2 ** (n - 1)
WEBHOOK_ATTEMPTS = 3  # one POST and at most two retries
WEBHOOK_TIMEOUT_S = 5.0

_STOP = object()


@dataclass(frozen=True)
class WriterStats:
    """What the writer has done so far: reports written to the store, spilled to the fallback
    file, re-imported from it at start, and webhook deliveries that failed for good."""

    written: int
    spilled: int
    reimported: int
    webhook_failures: int


class ReportWriter:
    """Background report writer for one store URL; see the module docstring.

    The URL is checked here, in the caller's thread, so a bad one fails at start-up; the
    database itself is opened on the writer thread, which is the only one that touches it.
    """

    def __init__(
        self,
        store_url: str,
        webhook_url: str | None = None,
        *,
        attempts: int = WRITE_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        webhook_attempts: int = WEBHOOK_ATTEMPTS,
        webhook_timeout_s: float = WEBHOOK_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        sqlite_path(store_url)  # raises StoreError for an unsupported URL
        if attempts < 1 or webhook_attempts < 1:
            raise ValueError("attempts and webhook_attempts must be at least 1")
        self._url = store_url
        self._spill = spill_path(store_url)
        self._webhook_url = webhook_url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._busy_timeout_s = busy_timeout_s
        self._webhook_attempts = webhook_attempts
        self._webhook_timeout_s = webhook_timeout_s
        self._sleep = sleep
        self._queue: queue.Queue[object] = queue.Queue()
        self._store: ReportStore | None = None
        self._closed = False
        self._written = 0
        self._spilled = 0
        self._reimported = 0
        self._webhook_failures = 0
        self._thread = threading.Thread(target=self._run, name="mosbridge-store", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._written, self._spilled, self._reimported, self._webhook_failures)

    def submit(self, report: dict[str, Any]) -> None:
        """Queue one report for writing; never blocks (the queue is unbounded).

        After :meth:`close` there is no writer thread: the report is spilled at once (this is
        shutdown, not the audio path) so that it is re-imported by the next writer.
        """
        if self._closed:
            log.warning("report for call_sid=%s submitted after close; spilling it",
                        report.get("call_sid"))
            self._spill_report(report)
            return
        self._queue.put(report)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything already submitted, then stop the thread; wait at most ``timeout``
        seconds. Reports still queued after that are left to the (daemon) thread and logged."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("report writer did not drain within %.1f s; about %d reports still queued",
                      timeout, self._queue.qsize())

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        self._reimport_spill()
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, dict)
            try:
                self._handle(item)
            except Exception:  # the thread must outlive any one bad report
                log.exception("unexpected error handling report for call_sid=%s", item.get("call_sid"))
        if self._store is not None:
            self._store.close()
            self._store = None

    def _handle(self, report: dict[str, Any]) -> None:
        if not self._write_with_retries(report):
            self._spill_report(report)
        if self._webhook_url is not None:
            self._post(self._webhook_url, report)

    def _open(self) -> ReportStore:
        if self._store is None:
            self._store = open_store(self._url, busy_timeout_s=self._busy_timeout_s)
        return self._store

    def _write_once(self, report: dict[str, Any]) -> None:
        try:
            self._open().write(report)
        except Exception:
            # A broken connection may stay broken: reopen on the next attempt.
            if self._store is not None:
                self._store.close()
                self._store = None
            raise

    def _write_with_retries(self, report: dict[str, Any]) -> bool:
        call_sid = report.get("call_sid")
        for attempt in range(1, self._attempts + 1):
            try:
                self._write_once(report)
            except Exception as e:
                log.error("store write failed for call_sid=%s (attempt %d/%d): %s",
                          call_sid, attempt, self._attempts, e)
                if attempt < self._attempts:
                    self._sleep(self._backoff_s * 2 ** (attempt - 1))
                continue
            self._written += 1
            return True
        return False

    def _spill_report(self, report: dict[str, Any]) -> None:
        call_sid = report.get("call_sid")
        try:
            line = json.dumps(report)
        except (TypeError, ValueError) as e:
            log.error("report for call_sid=%s is not JSON-able and is lost: %s", call_sid, e)
            return
        if self._spill is None:
            log.error("in-memory store has no spill file; report for call_sid=%s: %s", call_sid, line)
            return
        try:
            with self._spill.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:
            # Last resort: the report lives on in the log.
            log.error("cannot spill report for call_sid=%s to %s (%s); report: %s",
                      call_sid, self._spill, e, line)
            return
        self._spilled += 1
        log.warning("report for call_sid=%s spilled to %s", call_sid, self._spill)

    def _reimport_spill(self) -> None:
        """Write every spilled report into the store; keep the lines that still fail."""
        spill = self._spill
        if spill is None or not spill.exists():
            return
        try:
            lines = spill.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            log.error("cannot read spill file %s: %s", spill, e)
            return
        kept: list[str] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                report = json.loads(line)
            except ValueError as e:
                log.error("spill file %s has a malformed line, kept: %s", spill, e)
                kept.append(line)
                continue
            if not isinstance(report, dict):
                log.error("spill file %s has a non-object line, kept", spill)
                kept.append(line)
                continue
            try:
                self._write_once(report)
            except Exception as e:
                log.error("re-import of spilled call_sid=%s failed, kept: %s", report.get("call_sid"), e)
                kept.append(line)
                continue
            self._reimported += 1
        _rewrite(spill, kept)
        if self._reimported:
            log.info("re-imported %d spilled reports from %s", self._reimported, spill)

    def _post(self, url: str, report: dict[str, Any]) -> None:
        call_sid = report.get("call_sid")
        body = json.dumps(report).encode("utf-8")
        for attempt in range(1, self._webhook_attempts + 1):
            request = urllib.request.Request(
                url, data=body, method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "mosbridge"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self._webhook_timeout_s) as response:
                    response.read()
                return
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
                log.error("webhook POST for call_sid=%s to %s failed (attempt %d/%d): %s",
                          call_sid, url, attempt, self._webhook_attempts, e)
                if attempt < self._webhook_attempts:
                    self._sleep(self._backoff_s * 2 ** (attempt - 1))
        self._webhook_failures += 1


def _rewrite(spill: Path, kept: list[str]) -> None:
    try:
        if not kept:
            spill.unlink()
            return
        tmp = spill.with_name(spill.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(spill)
    except OSError as e:
        log.error("cannot rewrite spill file %s: %s", spill, e)
