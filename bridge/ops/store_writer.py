"""Writes call reports off the audio path: a queue in front of one thread that owns the store.

``submit`` only puts the report on a ``queue.Queue``. The writer thread writes each report to
the store (SQLite or PostgreSQL) and POSTs it to an optional webhook. When the database cannot
take it (down, locked, unreachable), the report is appended to a local **spool** file (JSON
Lines) instead, and so is every later report until the spool has drained, so reports reach the
database in the order the calls ended. The thread retries the spool with exponential backoff
(``retry_s`` doubling to ``max_retry_s``) while running, and a new writer drains what an earlier
process left behind, so a database outage or a restart costs delay, not reports. A report the
database refuses for its content (``store.refuses_content``) cannot block the ones behind it: it
goes to ``<spool>.bad`` with the reason and the queue moves on. Failures are logged on
``mosbridge.store`` with the call_sid.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from bridge.core.report_json import StoredReport
from bridge.ops.store import (
    BUSY_TIMEOUT_S,
    ReportStore,
    default_spool_path,
    open_store,
    parse_url,
    redact_url,
    refuses_content,
)
from bridge.ops.webhook import post_json

log = logging.getLogger("mosbridge.store")

WRITE_ATTEMPTS = 2  # a write and one quick retry before the report goes to the spool
BACKOFF_S = 0.1
RETRY_S = 1.0  # first retry of the spool after a failure; doubles up to MAX_RETRY_S
MAX_RETRY_S = 30.0

_STOP = object()


@dataclass(frozen=True)
class WriterStats:
    """What the writer has done so far: reports written to the store (directly or from the
    spool), sent to the spool, written from the spool, webhook deliveries that failed for good,
    and how many reports wait in the spool now."""

    written: int
    spooled: int
    reimported: int
    webhook_failures: int
    spool_depth: int
    refused: int = 0  # refused by the database for their content: kept in ``<spool>.bad``


class ReportWriter:
    """Background report writer for one store URL; see the module docstring.

    The URL is checked here, in the caller's thread, so a bad one fails at start-up; the
    database itself is opened on the writer thread, the only one that touches it.
    ``on_write(result)`` ("ok", "spooled" or "failed") and ``on_spool_depth(n)`` feed metrics.
    """

    def __init__(
        self,
        store_url: str,
        webhook_url: str | None = None,
        *,
        spool_path: Path | None = None,
        attempts: int = WRITE_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        retry_s: float = RETRY_S,
        max_retry_s: float = MAX_RETRY_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        webhook_attempts: int = 3,
        webhook_timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        on_write: Callable[[str], None] | None = None,
        on_spool_depth: Callable[[int], None] | None = None,
    ) -> None:
        parse_url(store_url)  # raises StoreError for an unsupported URL
        if attempts < 1 or webhook_attempts < 1:
            raise ValueError("attempts and webhook_attempts must be at least 1")
        self._url = store_url
        self._spool = spool_path if spool_path is not None else default_spool_path(store_url)
        self._webhook_url = webhook_url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._busy_timeout_s = busy_timeout_s
        self._webhook_attempts = webhook_attempts
        self._webhook_timeout_s = webhook_timeout_s
        self._sleep = sleep
        self._on_write = on_write or (lambda result: None)
        self._on_spool_depth = on_spool_depth or (lambda n: None)
        self._queue: queue.Queue[object] = queue.Queue()
        self._store: ReportStore | None = None
        self._closed = False
        self._written = self._spooled = self._reimported = self._webhook_failures = self._refused_count = 0
        self._depth = self._count_spool()
        self._next_retry = time.monotonic()
        self._retry_delay = retry_s
        self._thread = threading.Thread(target=self._run, name="mosbridge-store", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> WriterStats:
        return WriterStats(self._written, self._spooled, self._reimported, self._webhook_failures, self._depth,
                           self._refused_count)

    @property
    def spool_path(self) -> Path | None:
        return self._spool

    def submit(self, report: StoredReport) -> None:
        """Queue one report for writing; never blocks (the queue is unbounded).

        After :meth:`close` there is no writer thread: the report goes to the spool at once
        (this is shutdown, not the audio path), for the next writer to write.
        """
        if self._closed:
            log.warning("report for call_sid=%s submitted after close; spooling it", report.get("call_sid"))
            self._to_spool(report)
            return
        self._queue.put(report)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything already submitted (to the store or the spool), then stop the thread;
        wait at most ``timeout`` seconds. Reports still queued after that are logged."""
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
        if self._depth:
            self._drain_spool()
        while True:
            wait = max(0.0, self._next_retry - time.monotonic()) if self._depth else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                self._drain_spool()
                continue
            if item is _STOP:
                break
            assert isinstance(item, dict)
            try:
                self._handle(cast(StoredReport, item))
            except Exception:  # the thread must outlive any one bad report
                log.exception("unexpected error handling report for call_sid=%s", item.get("call_sid"))
        if self._depth:
            self._drain_spool()
            if self._depth:
                log.warning("%d report(s) left in the spool %s; the next start writes them", self._depth, self._spool)
        if self._store is not None:
            self._store.close()
            self._store = None

    def _handle(self, report: StoredReport) -> None:
        if self._depth and time.monotonic() >= self._next_retry:
            self._drain_spool()
        if self._depth:
            self._to_spool(report)  # keep the order: the spool drains first
        elif not self._write_with_retries(report):
            self._to_spool(report)
            self._schedule_retry(first=True)
        if self._webhook_url is not None:
            ok = post_json(self._webhook_url, report, f"report for call_sid={report.get('call_sid')}",
                           attempts=self._webhook_attempts, timeout_s=self._webhook_timeout_s,
                           backoff_s=self._backoff_s, sleep=self._sleep, logger=log)
            self._webhook_failures += not ok

    def _open(self) -> ReportStore:
        if self._store is None:
            self._store = open_store(self._url, busy_timeout_s=self._busy_timeout_s)
        return self._store

    def _write_once(self, report: StoredReport) -> None:
        try:
            self._open().write(report)
        except Exception:
            # A broken connection may stay broken: reopen on the next attempt.
            if self._store is not None:
                self._store.close()
                self._store = None
            raise

    def _write_with_retries(self, report: StoredReport) -> bool:
        """True once written, or once set aside as refused for its content (see ``_refused``);
        False when the database could not take it (to the spool)."""
        call_sid = report.get("call_sid")
        for attempt in range(1, self._attempts + 1):
            try:
                self._write_once(report)
            except Exception as e:
                if refuses_content(e):
                    self._refused(report, e)
                    return True
                log.error("store write failed for call_sid=%s (attempt %d/%d) at %s: %s",
                          call_sid, attempt, self._attempts, redact_url(self._url), e)
                if attempt < self._attempts:
                    self._sleep(self._backoff_s * 2 ** (attempt - 1))
                continue
            self._written += 1
            self._on_write("ok")
            return True
        return False

    def _refused(self, report: StoredReport, exc: BaseException) -> None:
        """A report the database refuses for what it holds goes to ``<spool>.bad`` with the
        reason, and the queue moves on: retried, it would block every later report forever."""
        reason = f"{type(exc).__name__}: {exc}"
        path = None if self._spool is None else _bad_file(self._spool)
        log.error("the store refuses the report for call_sid=%s for its content (%s); kept in %s",
                  report.get("call_sid"), reason, path)
        self._on_write("failed")
        self._refused_count += 1
        if path is None:
            return
        try:
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"reason": reason, "report": report}, default=str) + "\n")
        except (OSError, TypeError, ValueError) as e:
            log.error("cannot keep the refused report for call_sid=%s in %s: %s", report.get("call_sid"), path, e)


    def _schedule_retry(self, first: bool) -> None:
        self._retry_delay = self._retry_s if first else min(self._max_retry_s, self._retry_delay * 2)
        self._next_retry = time.monotonic() + self._retry_delay

    # -- the spool ---------------------------------------------------------------------------

    def _count_spool(self) -> int:
        if self._spool is None or not self._spool.exists():
            return 0
        try:
            with self._spool.open(encoding="utf-8") as f:
                return sum(1 for line in f if line.strip())
        except OSError as e:
            log.error("cannot read report spool %s: %s", self._spool, e)
            return 0

    def _to_spool(self, report: StoredReport) -> None:
        call_sid = report.get("call_sid")
        try:
            line = json.dumps(report)
        except (TypeError, ValueError) as e:
            log.error("report for call_sid=%s is not JSON-able and is lost: %s", call_sid, e)
            self._on_write("failed")
            return
        if self._spool is None:
            log.error("in-memory store has no spool; report for call_sid=%s: %s", call_sid, line)
            self._on_write("failed")
            return
        try:
            with self._spool.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:
            # Last resort: the report lives on in the log.
            log.error("cannot spool report for call_sid=%s to %s (%s); report: %s", call_sid, self._spool, e, line)
            self._on_write("failed")
            return
        self._spooled += 1
        self._depth += 1
        self._on_write("spooled")
        self._on_spool_depth(self._depth)
        log.warning("report for call_sid=%s spooled to %s (%d waiting)", call_sid, self._spool, self._depth)

    def _drain_spool(self) -> None:
        """Write spooled reports in order until one fails; keep that one and the rest for the
        next retry. A line that is not a report moves to ``<spool>.bad`` so it cannot block."""
        spool = self._spool
        if spool is None or not spool.exists():
            self._set_depth(0)
            return
        try:
            lines = [line for line in spool.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as e:
            log.error("cannot read report spool %s: %s", spool, e)
            self._schedule_retry(first=False)
            return
        done = 0
        bad: list[str] = []
        for line in lines:
            try:
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                report = cast(StoredReport, doc)  # written by to_json; the store checks what it needs
            except ValueError as e:
                log.error("report spool %s has a malformed line, moved to %s.bad: %s", spool, spool.name, e)
                bad.append(line)
                done += 1
                continue
            try:
                self._write_once(report)
            except Exception as e:
                if refuses_content(e):
                    self._refused(report, e)
                    done += 1
                    continue
                log.error("spooled report call_sid=%s still cannot be written (%d waiting): %s",
                          report.get("call_sid"), len(lines) - done, e)
                break
            done += 1
            self._reimported += 1
            self._written += 1
            self._on_write("ok")
        kept = lines[done:]
        _rewrite(spool, kept, bad)
        self._set_depth(len(kept))
        if kept:
            self._schedule_retry(first=False)
        elif done:
            log.info("report spool %s drained: %d report(s) written", spool, done - len(bad))

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self._on_spool_depth(depth)


def _bad_file(spool: Path) -> Path:
    """Where lines that are not reports, and reports the database refuses, are kept."""
    return spool.with_name(spool.name + ".bad")


def _rewrite(spool: Path, kept: list[str], bad: list[str]) -> None:
    try:
        if bad:
            with _bad_file(spool).open("a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in bad))
        if not kept:
            spool.unlink(missing_ok=True)
            return
        tmp = spool.with_name(spool.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(spool)
    except OSError as e:
        log.error("cannot rewrite report spool %s: %s", spool, e)
