"""The report store: the ``call_quality`` table and its companions, on SQLite or PostgreSQL.

One row per call keeps the columns a dashboard filters and sorts on (tenant, times, MOS, band,
dominant impairment, latency, jitter, loss) next to the full report JSON. ``tenants`` holds each
tenant's plan (report granularity) and API token hash; ``alerts`` every alert that fired.

Both databases get the same tables and columns through versioned migrations (``schema_version``
records each one), applied by :func:`open_store` in order; opening is idempotent and safe when
many bridges start at once (PostgreSQL: an advisory lock; SQLite: ``BEGIN IMMEDIATE``). A SQLite
file is put in WAL mode, so the worker processes of ``serve --workers N`` (one writer connection each)
read while another writes and queue their writes behind the busy timeout. Types
differ where each database has a better one: PostgreSQL keeps times as ``timestamptz`` and the
report as ``jsonb``; this module hands out ISO-8601 strings and dicts either way.

A :class:`ReportStore` wraps one connection and belongs to the thread that opened it.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from bridge.core.isotime import parse_iso, to_iso
from bridge.core.report_json import StoredReport
from bridge.core.tags import UNTAGGED

MEMORY = ":memory:"
SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
BUSY_TIMEOUT_S = 5.0  # how long a SQLite write waits for another connection's lock
CONNECT_TIMEOUT_S = 5  # PostgreSQL connect timeout (whole seconds)
STATEMENT_TIMEOUT_MS = 10_000  # PostgreSQL: no statement of ours may hang the writer longer
LEADER_LOCK_KEY = 0x6D6F7362  # "mosb": one alert evaluator per fleet holds this advisory lock
MIGRATION_LOCK_KEY = 0x6D6F736D  # "mosm"
DEFAULT_POSTGRES_SPOOL = "mosbridge-spool.jsonl"
# Indexed text columns (tenant, call_sid, ...) hold at most this many characters: 4 bytes each in
# UTF-8 stays far below PostgreSQL's btree row limit (~2700 bytes). The report JSON keeps it all.
COLUMN_MAX_CHARS = 256
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Plan = Literal["starter", "growth", "scale"]
PLANS: tuple[Plan, ...] = ("starter", "growth", "scale")


class StoreError(Exception):
    """The store cannot be opened or used as asked (bad URL, newer schema, malformed report)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened now: a condition that passes, not a bad request."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: str
    postgres: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "call_quality table and its (tenant, started_at) index",
        """
        CREATE TABLE call_quality (
            call_sid TEXT PRIMARY KEY, tenant TEXT, started_at TEXT, ended_at TEXT, duration_s REAL,
            mos REAL, r REAL, band TEXT, dominant_impairment TEXT, latency_ms REAL, jitter_ms REAL,
            packet_loss_pct REAL, bridge_latency_p99_ms REAL, codec_chain TEXT, tags TEXT, end_reason TEXT,
            report TEXT NOT NULL
        );
        CREATE INDEX call_quality_tenant_started ON call_quality (tenant, started_at);
        """,
        """
        CREATE TABLE call_quality (
            call_sid TEXT PRIMARY KEY, tenant TEXT, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ,
            duration_s DOUBLE PRECISION, mos DOUBLE PRECISION, r DOUBLE PRECISION, band TEXT,
            dominant_impairment TEXT, latency_ms DOUBLE PRECISION, jitter_ms DOUBLE PRECISION,
            packet_loss_pct DOUBLE PRECISION, bridge_latency_p99_ms DOUBLE PRECISION, codec_chain TEXT,
            tags TEXT, end_reason TEXT, report JSONB NOT NULL
        );
        CREATE INDEX call_quality_tenant_started ON call_quality (tenant, started_at);
        """,
    ),
    Migration(
        2,
        "(tenant, ended_at) index for rolling windows; tenants (plan, token); alerts",
        """
        CREATE INDEX call_quality_tenant_ended ON call_quality (tenant, ended_at);
        CREATE INDEX call_quality_ended ON call_quality (ended_at);
        CREATE TABLE tenants (
            tenant TEXT PRIMARY KEY, plan TEXT NOT NULL, token_sha256 TEXT, updated_at TEXT NOT NULL
        );
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, rule TEXT NOT NULL,
            state TEXT NOT NULL, fired_at TEXT NOT NULL, resolved_at TEXT, mos_at_fire REAL,
            mos_at_resolve REAL, calls INTEGER, threshold REAL
        );
        CREATE INDEX alerts_tenant_fired ON alerts (tenant, fired_at);
        CREATE UNIQUE INDEX alerts_one_firing ON alerts (tenant, rule) WHERE state = 'firing';
        """,
        """
        CREATE INDEX call_quality_tenant_ended ON call_quality (tenant, ended_at);
        CREATE INDEX call_quality_ended ON call_quality (ended_at);
        CREATE TABLE tenants (
            tenant TEXT PRIMARY KEY, plan TEXT NOT NULL, token_sha256 TEXT, updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE alerts (
            id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, rule TEXT NOT NULL,
            state TEXT NOT NULL, fired_at TIMESTAMPTZ NOT NULL, resolved_at TIMESTAMPTZ,
            mos_at_fire DOUBLE PRECISION, mos_at_resolve DOUBLE PRECISION, calls INTEGER,
            threshold DOUBLE PRECISION
        );
        CREATE INDEX alerts_tenant_fired ON alerts (tenant, fired_at);
        CREATE UNIQUE INDEX alerts_one_firing ON alerts (tenant, rule) WHERE state = 'firing';
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
# A tenant filter: "unknown" also matches calls that carried no tenant.
_TENANT_IS = f"(tenant = ? OR (tenant IS NULL AND '{UNTAGGED}' = ?))"
_TIME_COLUMNS = frozenset({"started_at", "ended_at", "fired_at", "resolved_at", "updated_at"})
ALERT_COLUMNS: tuple[str, ...] = (
    "id", "tenant", "rule", "state", "fired_at", "resolved_at", "mos_at_fire", "mos_at_resolve", "calls",
    "threshold",
)


@dataclass(frozen=True)
class StoreURL:
    kind: Literal["sqlite", "postgresql"]
    target: str  # the SQLite path (or ":memory:") or the PostgreSQL connection URL


def parse_url(url: str) -> StoreURL:
    """What a store URL names.

    ``sqlite:///rel/path.db`` is relative to the working directory and ``sqlite:////abs/path.db``
    absolute (SQLAlchemy's convention); a string without a scheme is a plain SQLite file path;
    ``postgresql://user:pass@host:port/db?options`` (or ``postgres://``) is a libpq URL.
    """
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):]
        if not path:
            raise StoreError(f"store URL {url!r} names no database file")
        return StoreURL("sqlite", path)
    if url.startswith(POSTGRES_PREFIXES):
        return StoreURL("postgresql", url)
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise StoreError(f"store URL scheme {scheme!r} is not supported; use sqlite:///path/to/file.db, "
                         "sqlite:///:memory:, a plain file path or postgresql://user@host:5432/db")
    if not url:
        raise StoreError("empty store URL")
    return StoreURL("sqlite", url)


def sqlite_path(url: str) -> str | None:
    """The SQLite file a store URL names, ``":memory:"``, or None for PostgreSQL."""
    parsed = parse_url(url)
    return parsed.target if parsed.kind == "sqlite" else None


def default_spool_path(url: str) -> Path | None:
    """Where reports wait while the database is unreachable: ``<db file>.spill.jsonl`` next to a
    SQLite file, ``mosbridge-spool.jsonl`` in the working directory for PostgreSQL, None for an
    in-memory database."""
    parsed = parse_url(url)
    if parsed.kind == "postgresql":
        return Path(DEFAULT_POSTGRES_SPOOL)
    return None if parsed.target == MEMORY else Path(parsed.target + ".spill.jsonl")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_store(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> ReportStore:
    """Open (creating if needed) the store at ``url`` and bring its schema up to date."""
    parsed = parse_url(url)
    if parsed.kind == "postgresql":
        return _open_postgres(parsed.target)
    try:
        conn = sqlite3.connect(parsed.target, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreUnavailable(f"cannot open report store {parsed.target!r}: {e}") from e
    if parsed.target != MEMORY:
        try:
            _use_wal(conn, busy_timeout_s)
        except sqlite3.Error as e:
            conn.close()
            raise StoreUnavailable(f"cannot open report store {parsed.target!r}: {e}") from e
    return _migrated(ReportStore(_SQLite(conn)), repr(parsed.target))


def _use_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Switch a SQLite file to write-ahead logging (it stays so): readers no longer block the
    writer, and several processes' writers take turns. The switch needs a moment alone with the
    file; when other processes open it at the same time SQLite may say "locked" at once instead of
    waiting its busy timeout, so this retries for as long."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _open_postgres(url: str) -> ReportStore:
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    except psycopg.Error as e:
        raise StoreUnavailable(f"cannot open report store {redact_url(url)}: {e}") from e
    return _migrated(ReportStore(_Postgres(conn)), redact_url(url))


def _migrated(store: ReportStore, where: str) -> ReportStore:
    """``store`` with its schema brought up to date, or closed and a StoreError."""
    try:
        store.migrate()
    except Exception as e:
        store.close()
        if isinstance(e, StoreError) or not store.is_db_error(e):
            raise
        raise StoreUnavailable(f"cannot open report store {where}: {e}") from e
    except BaseException:
        store.close()
        raise
    return store


# ----------------------------------------------------------------------------- dialects


class _Dialect:
    """What differs between the two databases: placeholders, time values, JSON, locks."""

    name: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def begin_migration(self) -> None:
        raise NotImplementedError

    def lock_migrations(self, held: bool) -> None:
        """Take (``held``) or release the lock that serializes migrating processes, if any."""

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def time_param(self, iso: str | None) -> Any:
        # Canonical text (milliseconds, Z), so that SQLite's text comparison is time order.
        return None if iso is None else to_iso(_instant(iso))

    def time_value(self, value: Any) -> str | None:
        return value if value is None or isinstance(value, str) else to_iso(value)

    def json_value(self, value: Any) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(value) if isinstance(value, str | bytes) else value
        return doc

    def try_leader_lock(self) -> bool:
        return True

    def close(self) -> None:
        raise NotImplementedError

    def is_unique_violation(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def is_error(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def stream_sid_of(self, column: str) -> str:
        """SQL for the ``stream_sid`` of the report JSON in ``column``."""
        raise NotImplementedError


class _SQLite(_Dialect):
    name = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def begin_migration(self) -> None:
        self.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self.conn.close()

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def stream_sid_of(self, column: str) -> str:
        return f"json_extract({column}, '$.stream_sid')"


class _Postgres(_Dialect):
    name = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql.replace("?", "%s"), tuple(params))
        return list(cur.fetchall()) if cur.description is not None else []

    def begin_migration(self) -> None:
        self.execute("BEGIN")

    def lock_migrations(self, held: bool) -> None:
        self.execute("SELECT pg_advisory_lock(?)" if held else "SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK_KEY,))

    def time_param(self, iso: str | None) -> Any:
        return None if iso is None else _instant(iso)

    def try_leader_lock(self) -> bool:
        [(got,)] = self.execute("SELECT pg_try_advisory_lock(?)", (LEADER_LOCK_KEY,))
        return bool(got)

    def close(self) -> None:
        self.conn.close()

    def is_unique_violation(self, exc: BaseException) -> bool:
        import psycopg.errors

        return isinstance(exc, psycopg.errors.UniqueViolation)

    def is_error(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.Error)

    def stream_sid_of(self, column: str) -> str:
        return f"({column} ->> 'stream_sid')"


def _instant(iso: str) -> datetime:
    try:
        return parse_iso(iso)
    except ValueError as e:
        raise StoreError(f"not an ISO-8601 time: {iso!r}") from e


# ----------------------------------------------------------------------------- rows


def summary_row(report: StoredReport) -> dict[str, Any]:
    """The ``call_quality`` column values for one stored report (``Report.to_json()``, or an older
    version's JSON: every key is read with ``.get`` and checked).

    ``latency_ms`` is the caller's mouth-to-ear estimate (outbound ``delay_ms``); jitter and loss
    are the inbound (caller -> AI) network figures; ``bridge_latency_p99_ms`` is the worse p99
    of the two directions, None when neither direction measured it.
    """
    call_sid = report.get("call_sid")
    if not isinstance(call_sid, str) or not call_sid:
        raise StoreError(f"report has no call_sid: keys {sorted(report)}")
    inbound = _direction(report.get("inbound"))
    outbound = _direction(report.get("outbound"))
    p99s = [bl["p99"] for bl in (inbound.get("bridge_latency_ms"), outbound.get("bridge_latency_ms"))
            if isinstance(bl, dict) and bl.get("p99") is not None]
    chain = report.get("codec_chain")
    return {
        "call_sid": call_sid[:COLUMN_MAX_CHARS],
        "tenant": _bounded(report.get("tenant")),
        "started_at": report.get("started_at"),
        "ended_at": report.get("ended_at"),
        "duration_s": report.get("duration_s"),
        "mos": report.get("mos"),
        "r": report.get("r"),
        "band": _bounded(report.get("band")),
        "dominant_impairment": _bounded(report.get("dominant_impairment")),
        "latency_ms": outbound.get("delay_ms"),
        "jitter_ms": inbound.get("jitter_ms"),
        "packet_loss_pct": inbound.get("loss_pct"),
        "bridge_latency_p99_ms": max(p99s) if p99s else None,
        "codec_chain": _bounded(chain if chain is None or isinstance(chain, str) else json.dumps(chain)),
        "tags": json.dumps(report.get("tags") or {}, sort_keys=True),
        "end_reason": _bounded(report.get("end_reason")),
    }


def refuses_content(exc: BaseException) -> bool:
    """Whether writing a report failed for the report itself (malformed, or a value the database
    cannot hold, e.g. PostgreSQL's DataError or a row over its index limit) rather than for the
    database's state: retrying it can never succeed, and would block every report behind it."""
    if isinstance(exc, StoreUnavailable):
        return False
    if isinstance(exc, StoreError | UnicodeError | sqlite3.DataError):
        return True
    psycopg = sys.modules.get("psycopg")  # loaded only where PostgreSQL is in use
    return psycopg is not None and isinstance(exc, psycopg.errors.DataError | psycopg.errors.ProgramLimitExceeded)


def clean_strings(value: Any) -> Any:
    """``value`` with every string (keys too) free of NUL and lone surrogates, which PostgreSQL's
    text and jsonb refuse and UTF-8 cannot encode."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {clean_strings(k): clean_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_strings(v) for v in value]
    return value


def _bounded(value: Any) -> Any:
    return value[:COLUMN_MAX_CHARS] if isinstance(value, str) else value


def _direction(d: object) -> dict[str, Any]:
    return d if isinstance(d, dict) else {}


def _upsert(stream_of: Callable[[str], str]) -> str:
    """Insert a report, or replace the one stored for its call_sid if it is the same stream's
    (a report written again, e.g. from the spool); ``RETURNING`` says whether it landed."""
    return (
        f"INSERT INTO call_quality ({', '.join(SUMMARY_COLUMNS)}, report) "
        f"VALUES ({', '.join('?' for _ in SUMMARY_COLUMNS)}, ?) "
        "ON CONFLICT (call_sid) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*SUMMARY_COLUMNS[1:], "report"))
        + f" WHERE {stream_of('call_quality.report')} IS NULL"
        f" OR {stream_of('call_quality.report')} = {stream_of('excluded.report')}"
        " RETURNING call_sid"
    )


@dataclass(frozen=True)
class MosPoint:
    """One ended call, as the rolling windows see it: when it ended (Unix s) and its MOS."""

    tenant: str
    ended_s: float
    mos: float


@dataclass(frozen=True)
class TenantRecord:
    tenant: str
    plan: Plan
    token_sha256: str | None
    updated_at: str


@dataclass(frozen=True)
class AlertRecord:
    id: int
    tenant: str
    rule: str
    state: str
    fired_at: str
    resolved_at: str | None
    mos_at_fire: float | None
    mos_at_resolve: float | None
    calls: int | None
    threshold: float | None

    def to_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in ALERT_COLUMNS}


class ReportStore:
    """Reports, tenants and alerts over one connection (use it from the thread that opened it)."""

    def __init__(self, db: _Dialect) -> None:
        self._db = db

    @property
    def kind(self) -> str:
        return self._db.name

    def is_db_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` came from the database driver (connection lost, timeout, lock...)."""
        return self._db.is_error(exc)



    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations the database lacks, each in its own transaction; return the version."""
        self._db.lock_migrations(True)
        try:
            return self._migrate()
        finally:
            self._db.lock_migrations(False)

    def _migrate(self) -> int:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                   "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(f"report store schema is version {current}, newer than this mosbridge "
                             f"understands ({SCHEMA_VERSION}); upgrade mosbridge")
        for m in MIGRATIONS:
            if m.version <= current:
                continue
            db.begin_migration()
            try:
                # Another process may have migrated between our read and our lock.
                if self.schema_version() < m.version:
                    for statement in _statements(m.postgres if db.name == "postgresql" else m.sqlite):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                               (m.version, m.description, to_iso(datetime.now().astimezone())))
                db.commit()
            except BaseException:
                db.rollback()
                raise
        return self.schema_version()

    def schema_version(self) -> int:
        [(version,)] = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        return int(version)

    # -- reports ------------------------------------------------------------------------

    def write(self, report: StoredReport) -> None:
        """Insert or replace the report for its call_sid (a call re-reported keeps one row).

        What a peer put in a report cannot make the database refuse it: strings are cleaned of
        what neither database stores (NUL, lone surrogates: U+FFFD instead), and the indexed
        columns are cut to COLUMN_MAX_CHARS; the report JSON keeps every value's full length."""
        report = clean_strings(report)
        row = summary_row(report)
        try:
            text = json.dumps(report)
        except (TypeError, ValueError) as e:
            raise StoreError(f"report for {row['call_sid']} is not JSON-able: {e}") from e
        values = [self._time_or_none(row[c]) if c in _TIME_COLUMNS else row[c] for c in SUMMARY_COLUMNS]
        # The JSON text goes in as is: SQLite keeps it as TEXT, PostgreSQL casts it to jsonb.
        upsert = _upsert(self._db.stream_sid_of)
        if self._db.execute(upsert, (*values, text)):
            return
        # Another stream of the same call was stored first (a second <Stream> on one CallSid):
        # keep both, this one under "<call_sid>/<stream_sid>".
        stream = report.get("stream_sid")
        values[0] = f"{row['call_sid']}/{stream if isinstance(stream, str) else 'stream'}"[:COLUMN_MAX_CHARS]
        self._db.execute(upsert, (*values, text))

    def _time_or_none(self, value: Any) -> Any:
        """A report's time for its column; one that is not an ISO-8601 string leaves the column
        NULL (the report itself keeps it as it came)."""
        try:
            return self._db.time_param(value) if isinstance(value, str) else None
        except StoreError:
            return None

    def get(self, call_sid: str) -> StoredReport | None:
        """The full stored report, or None for an unknown call. It comes back as it was written: a
        report older code wrote may lack keys this version writes."""
        rows = self._db.execute("SELECT report FROM call_quality WHERE call_sid = ?", (call_sid,))
        return cast(StoredReport, self._db.json_value(rows[0][0])) if rows else None

    def list(self, tenant: str | None = None, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """Summary rows (the columns, ``tags`` decoded), newest ``started_at`` first; rows with
        no start time come last, and call_sid breaks ties so the order is deterministic."""
        if limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        where, params = ("WHERE " + _TENANT_IS, (tenant, tenant)) if tenant is not None else ("", ())
        rows = self._db.execute(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM call_quality {where} "
            "ORDER BY started_at IS NULL, started_at DESC, call_sid DESC LIMIT ?",
            (*params, limit),
        )
        out = []
        for values in rows:
            d = self._decode(SUMMARY_COLUMNS, values)
            d["tags"] = json.loads(d["tags"]) if d["tags"] else {}
            out.append(d)
        return out

    def mos_points(self, since: str, until: str, tenant: str | None = None) -> builtins.list[MosPoint]:
        """Calls with a MOS that ended in (since, until], oldest first (ISO-8601 bounds); calls
        without a tenant come as tenant ``unknown``."""
        where = "ended_at > ? AND ended_at <= ? AND mos IS NOT NULL"
        params: tuple[Any, ...] = (self._db.time_param(since), self._db.time_param(until))
        if tenant is not None:
            where += " AND " + _TENANT_IS
            params += (tenant, tenant)
        rows = self._db.execute(
            f"SELECT COALESCE(tenant, ?), ended_at, mos FROM call_quality WHERE {where} ORDER BY ended_at",
            (UNTAGGED, *params))
        return [MosPoint(t, parse_iso(self._db.time_value(e) or "").timestamp(), float(m)) for t, e, m in rows]

    def last_calls(self, tenant: str | None = None) -> dict[str, str]:
        """Each tenant's latest call end (ISO-8601), or only ``tenant``'s; calls without a tenant
        are under ``unknown``."""
        where, params = ("AND " + _TENANT_IS, (tenant, tenant)) if tenant is not None else ("", ())
        rows = self._db.execute(f"SELECT COALESCE(tenant, ?), MAX(ended_at) FROM call_quality "
                                f"WHERE ended_at IS NOT NULL {where} GROUP BY 1", (UNTAGGED, *params))
        return {t: self._db.time_value(e) or "" for t, e in rows}

    # -- tenants ------------------------------------------------------------------------

    def tenant(self, tenant: str) -> TenantRecord | None:
        rows = self._db.execute("SELECT tenant, plan, token_sha256, updated_at FROM tenants WHERE tenant = ?",
                                (tenant,))
        return self._tenant(rows[0]) if rows else None

    def tenants(self) -> builtins.list[TenantRecord]:
        rows = self._db.execute("SELECT tenant, plan, token_sha256, updated_at FROM tenants ORDER BY tenant")
        return [self._tenant(r) for r in rows]

    def set_tenant(self, tenant: str, plan: Plan, token_sha256: str | None, now: str) -> TenantRecord:
        """Create or update a tenant's plan; ``token_sha256`` None keeps the token it has."""
        if plan not in PLANS:
            raise StoreError(f"unknown plan {plan!r}; one of {', '.join(PLANS)}")
        self._db.execute(
            "INSERT INTO tenants (tenant, plan, token_sha256, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant) DO UPDATE SET plan = excluded.plan, updated_at = excluded.updated_at, "
            "token_sha256 = COALESCE(excluded.token_sha256, tenants.token_sha256)",
            (tenant, plan, token_sha256, self._db.time_param(now)))
        record = self.tenant(tenant)
        assert record is not None
        return record

    def _tenant(self, row: tuple[Any, ...]) -> TenantRecord:
        tenant, plan, token, updated = row
        return TenantRecord(tenant, plan, token, self._db.time_value(updated) or "")

    # -- alerts -------------------------------------------------------------------------

    def firing_alerts(self) -> builtins.list[AlertRecord]:
        return self._alerts("WHERE state = 'firing'", (), None)

    def alerts(self, tenant: str | None = None, state: str | None = None,
               limit: int = 50) -> builtins.list[AlertRecord]:
        """Alerts newest first, optionally of one tenant and one state (firing or resolved)."""
        clauses, params = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if state is not None:
            clauses.append("state = ?")
            params.append(state)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._alerts(where, tuple(params), limit)

    def open_alert(self, tenant: str, rule: str, fired_at: str, mos: float, calls: int,
                   threshold: float) -> AlertRecord | None:
        """Record a firing alert; None if this rule already fires for this tenant (another
        instance got there first: the partial unique index keeps one firing row per pair)."""
        try:
            self._db.execute(
                "INSERT INTO alerts (tenant, rule, state, fired_at, mos_at_fire, calls, threshold) "
                "VALUES (?, ?, 'firing', ?, ?, ?, ?)",
                (tenant, rule, self._db.time_param(fired_at), mos, calls, threshold))
        except Exception as e:
            if self._db.is_unique_violation(e):
                return None
            raise
        found = self._alerts("WHERE tenant = ? AND rule = ? AND state = 'firing'", (tenant, rule), 1)
        return found[0] if found else None

    def resolve_alert(self, alert_id: int, resolved_at: str, mos: float) -> bool:
        """Mark a firing alert resolved; False if it was not firing (already resolved elsewhere)."""
        before = self._alerts("WHERE id = ? AND state = 'firing'", (alert_id,), 1)
        if not before:
            return False
        self._db.execute("UPDATE alerts SET state = 'resolved', resolved_at = ?, mos_at_resolve = ? "
                         "WHERE id = ? AND state = 'firing'", (self._db.time_param(resolved_at), mos, alert_id))
        return True

    def _alerts(self, where: str, params: tuple[Any, ...], limit: int | None) -> builtins.list[AlertRecord]:
        sql = f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts {where} ORDER BY fired_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        out = []
        for values in self._db.execute(sql, params):
            d = self._decode(ALERT_COLUMNS, values)
            out.append(AlertRecord(**d))
        return out

    # -- fleet ----------------------------------------------------------------------------

    def try_leader_lock(self) -> bool:
        """Become the one instance that evaluates alerts (PostgreSQL advisory lock, held for the
        life of this connection); SQLite is single-host and always says yes."""
        return self._db.try_leader_lock()

    def _decode(self, columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
        return {c: (self._db.time_value(v) if c in _TIME_COLUMNS else v) for c, v in zip(columns, values, strict=True)}

    def close(self) -> None:
        self._db.close()


def _statements(sql: str) -> builtins.list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
