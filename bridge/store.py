"""The embedded report store: one SQLite row per call, in the shape of the ``call_quality`` table.

Each row keeps the columns a dashboard filters and sorts on (tenant, started_at, MOS, band, the
dominant impairment, latency, jitter, loss) next to the full report JSON, so the summary can
grow without losing anything. The schema is versioned: ``schema_version`` records every applied
migration, and :func:`open_store` applies the missing ones in order, so opening is idempotent.

A :class:`ReportStore` wraps one ``sqlite3`` connection and, like it, belongs to the thread that
opened it; :mod:`bridge.store_writer` owns one on its background thread.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MEMORY = ":memory:"
SQLITE_PREFIX = "sqlite:///"
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another connection's lock before failing


class StoreError(Exception):
    """The store cannot be opened or used as asked (bad URL, newer schema, malformed report)."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "call_quality table and its (tenant, started_at) index",
        """
        CREATE TABLE call_quality (
            call_sid TEXT PRIMARY KEY,
            tenant TEXT,
            started_at TEXT,
            ended_at TEXT,
            duration_s REAL,
            mos REAL,
            r REAL,
            band TEXT,
            dominant_impairment TEXT,
            latency_ms REAL,
            jitter_ms REAL,
            packet_loss_pct REAL,
            bridge_latency_p99_ms REAL,
            codec_chain TEXT,
            tags TEXT,
            end_reason TEXT,
            report TEXT NOT NULL
        );
        CREATE INDEX call_quality_tenant_started ON call_quality (tenant, started_at);
        """,
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# The summary columns, in table order; ``report`` (the full JSON) is stored but not listed.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "call_sid", "tenant", "started_at", "ended_at", "duration_s", "mos", "r", "band",
    "dominant_impairment", "latency_ms", "jitter_ms", "packet_loss_pct", "bridge_latency_p99_ms",
    "codec_chain", "tags", "end_reason",
)


def sqlite_path(url: str) -> str:
    """The SQLite database path a store URL names, or ``":memory:"``.

    ``sqlite:///rel/path.db`` is relative to the working directory and ``sqlite:////abs/path.db``
    absolute (SQLAlchemy's convention); a string without a scheme is a plain file path. Any
    other scheme raises :class:`StoreError`.
    """
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):]
        if not path:
            raise StoreError(f"store URL {url!r} names no database file")
        return path
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise StoreError(f"store URL scheme {scheme!r} is not supported yet; use sqlite:///path/to/file.db, "
                         "sqlite:///:memory: or a plain file path")
    if not url:
        raise StoreError("empty store URL")
    return url


def spill_path(url: str) -> Path | None:
    """Where reports that could not be written go (``<db path>.spill.jsonl``); None in memory."""
    path = sqlite_path(url)
    return None if path == MEMORY else Path(path + ".spill.jsonl")


def open_store(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> ReportStore:
    """Open (creating if needed) the store at ``url`` and bring its schema up to date."""
    path = sqlite_path(url)
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open report store {path!r}: {e}") from e
    try:
        migrate(conn)
    except sqlite3.Error as e:
        conn.close()
        raise StoreError(f"cannot open report store {path!r}: {e}") from e
    except BaseException:
        conn.close()
        raise
    return ReportStore(conn)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations ``conn`` lacks, each in its own transaction; return the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                 "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                 "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))")
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(f"report store schema is version {current}, newer than this mosbridge "
                         f"understands ({SCHEMA_VERSION}); upgrade mosbridge")
    for m in MIGRATIONS:
        if m.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if schema_version(conn) < m.version:
                for statement in _statements(m.sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                             (m.version, m.description))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The ``call_quality`` column values for one report dict (``CallReport.to_dict()`` plus the
    server's ``started_at``, ``ended_at``, ``end_reason`` and ``codec_chain``).

    ``latency_ms`` is the caller's mouth-to-ear estimate (outbound ``delay_ms``); jitter and loss
    are the inbound (caller -> AI) network figures; ``bridge_latency_p99_ms`` is the worse p99
    of the two directions, None when neither direction measured it.
    """
    call_sid = report.get("call_sid")
    if not isinstance(call_sid, str) or not call_sid:
        raise StoreError(f"report has no call_sid: keys {sorted(report)}")
    inbound = _direction(report, "inbound")
    outbound = _direction(report, "outbound")
    p99s = [bl["p99"] for bl in (inbound.get("bridge_latency_ms"), outbound.get("bridge_latency_ms"))
            if isinstance(bl, dict) and bl.get("p99") is not None]
    chain = report.get("codec_chain")
    return {
        "call_sid": call_sid,
        "tenant": report.get("tenant"),
        "started_at": report.get("started_at"),
        "ended_at": report.get("ended_at"),
        "duration_s": report.get("duration_s"),
        "mos": report.get("mos"),
        "r": report.get("r"),
        "band": report.get("band"),
        "dominant_impairment": report.get("dominant_impairment"),
        "latency_ms": outbound.get("delay_ms"),
        "jitter_ms": inbound.get("jitter_ms"),
        "packet_loss_pct": inbound.get("loss_pct"),
        "bridge_latency_p99_ms": max(p99s) if p99s else None,
        "codec_chain": chain if chain is None or isinstance(chain, str) else json.dumps(chain),
        "tags": json.dumps(report.get("tags") or {}, sort_keys=True),
        "end_reason": report.get("end_reason"),
    }


def _direction(report: dict[str, Any], key: str) -> dict[str, Any]:
    d = report.get(key)
    return d if isinstance(d, dict) else {}


_UPSERT = (
    f"INSERT INTO call_quality ({', '.join(SUMMARY_COLUMNS)}, report) "
    f"VALUES ({', '.join('?' for _ in SUMMARY_COLUMNS)}, ?) "
    "ON CONFLICT (call_sid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*SUMMARY_COLUMNS[1:], "report"))
)


class ReportStore:
    """Reports by call_sid over one SQLite connection (use it from the thread that opened it)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def write(self, report: dict[str, Any]) -> None:
        """Insert or replace the report for its call_sid (a call re-reported keeps one row)."""
        row = summary_row(report)
        try:
            text = json.dumps(report)
        except (TypeError, ValueError) as e:
            raise StoreError(f"report for {row['call_sid']} is not JSON-able: {e}") from e
        # Autocommit connection: the one statement is its own transaction.
        self._conn.execute(_UPSERT, (*(row[c] for c in SUMMARY_COLUMNS), text))

    def get(self, call_sid: str) -> dict[str, Any] | None:
        """The full stored report dict, or None for an unknown call."""
        found = self._conn.execute("SELECT report FROM call_quality WHERE call_sid = ?",
                                   (call_sid,)).fetchone()
        if found is None:
            return None
        report: dict[str, Any] = json.loads(found[0])
        return report

    def list(self, tenant: str | None = None, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """Summary rows (the columns, ``tags`` decoded), newest ``started_at`` first; rows with
        no start time come last, and call_sid breaks ties so the order is deterministic."""
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        where, params = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
        rows = self._conn.execute(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM call_quality {where} "
            "ORDER BY started_at IS NULL, started_at DESC, call_sid DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        out = []
        for values in rows:
            d = dict(zip(SUMMARY_COLUMNS, values, strict=True))
            d["tags"] = json.loads(d["tags"]) if d["tags"] else {}
            out.append(d)
        return out

    def close(self) -> None:
        self._conn.close()
