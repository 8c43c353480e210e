"""The report store (SQLite and PostgreSQL) and its background writer, on real databases, a
real TCP outage and a real HTTP server."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.cli.report import format_report
from bridge.core.report_json import StoredReport
from bridge.ops.store import (
    SCHEMA_VERSION,
    StoreError,
    default_spool_path,
    open_store,
    redact_url,
    sqlite_path,
    summary_row,
    token_hash,
)
from bridge.ops.store_writer import ReportWriter
from quality.impairments import CodecChain
from quality.latency import LatencySummary
from quality.meter import DirectionMeter
from quality.playout import FixedPlayout
from quality.report import CallReport, DirectionReport, assess, direction_input
from tests.postgres import PgServer
from tests.reports import stored
from tests.tcp_proxy import TcpProxy
from tests.webhook_server import Received

G711 = CodecChain.of("g711")


def _direction(name: str, lose_every: int | None, jitter_s: float, delay_ms: float,
               latency: LatencySummary | None) -> DirectionReport:
    meter = DirectionMeter(FixedPlayout(0.060))
    chunk = 0
    for i in range(1, 251):
        if lose_every is not None and i % lose_every == 0:
            continue  # lost before Twilio: its media time is skipped, the chunk counter is not
        chunk += 1
        # Every other frame arrives jitter_s late: a fixed, deterministic jitter pattern.
        meter.update(chunk, i * 0.020, i * 0.020 + 0.030 + (jitter_s if i % 2 else 0.0))
    figures = meter.figures()
    return DirectionReport(name, figures, delay_ms, G711.name,
                           assess(direction_input(figures, delay_ms, G711)), latency)


def make_report(call_sid: str, tenant: str | None = "acme", started_at: str | None = "2026-05-01T10:00:00Z",
                *, lose_every: int | None = None, inbound_p99_ms: float | None = 12.0,
                outbound_p99_ms: float | None = 31.0, **extra: Any) -> StoredReport:
    """A real ``CallReport.to_dict()`` plus the keys the live server adds."""
    def latency(p99: float | None) -> LatencySummary | None:
        return None if p99 is None else LatencySummary(count=100, p50_ms=p99 / 3, p95_ms=p99 / 1.5,
                                                       p99_ms=p99, max_ms=p99 * 2, mean_ms=p99 / 3)
    rep = CallReport(
        call_sid=call_sid,
        tenant=tenant,
        inbound=_direction("inbound", lose_every, 0.004, 90.0, latency(inbound_p99_ms)),
        outbound=_direction("outbound", lose_every, 0.002, 140.0, latency(outbound_p99_ms)),
        duration_s=5.0,
        tags={"region": "us1", "agent": "support"},
        assumptions={"playout_ms": 60.0},
        counters={"marks": 3},
    )
    d = rep.to_dict()
    d.update(started_at=started_at, ended_at="2026-05-01T10:00:05.000Z", end_reason="stop",
             codec_chain="pcmu -> g711")
    d.update(extra)
    return stored(json.loads(json.dumps(d)))


def db_url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute, so this is sqlite:////tmp/...


# -- URLs and migrations ------------------------------------------------------------------------

def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sqlite_path("sqlite:///calls.db") == "calls.db"
    assert sqlite_path("sqlite:////var/lib/m.db") == "/var/lib/m.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("data/m.db") == "data/m.db"
    assert sqlite_path("postgresql://u@db/m") is None
    assert default_spool_path("sqlite:///:memory:") is None
    assert default_spool_path("sqlite:///calls.db") == Path("calls.db.spill.jsonl")
    assert default_spool_path("postgres://u@db/m") == Path("mosbridge-spool.jsonl")
    assert redact_url("postgresql://u:s3cret@db:5432/m") == "postgresql://u:***@db:5432/m"
    assert redact_url("postgresql://u@db/m") == "postgresql://u@db/m"
    with pytest.raises(StoreError, match="not supported"):
        open_store("mysql://db.example/mosbridge")
    with pytest.raises(StoreError, match="no database file"):
        open_store("sqlite:///")
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel.db").close()
    open_store(str(tmp_path / "bare.db")).close()
    assert (tmp_path / "rel.db").is_file()
    assert (tmp_path / "bare.db").is_file()


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot open") as exc:
        open_store("postgresql://mosbridge:hunter2@127.0.0.1:1/nowhere")
    assert "hunter2" not in str(exc.value)


def test_sqlite_migration_is_versioned_and_idempotent(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    for _ in range(2):
        store = open_store(url)
        store.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == [1, 2]
    assert SCHEMA_VERSION == 2
    cols = [r[1] for r in conn.execute("PRAGMA table_info(call_quality)")]
    assert cols == ["call_sid", "tenant", "started_at", "ended_at", "duration_s", "mos", "r", "band",
                    "dominant_impairment", "latency_ms", "jitter_ms", "packet_loss_pct",
                    "bridge_latency_p99_ms", "codec_chain", "tags", "end_reason", "report"]
    pk = [r[1] for r in conn.execute("PRAGMA table_info(call_quality)") if r[5]]
    assert pk == ["call_sid"]
    for index, want in (("call_quality_tenant_started", ["tenant", "started_at"]),
                        ("call_quality_tenant_ended", ["tenant", "ended_at"])):
        assert [r[2] for r in conn.execute(f"PRAGMA index_info({index})")] == want
    conn.close()


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')));
        CREATE TABLE call_quality (call_sid TEXT PRIMARY KEY, tenant TEXT, started_at TEXT, ended_at TEXT,
            duration_s REAL, mos REAL, r REAL, band TEXT, dominant_impairment TEXT, latency_ms REAL, jitter_ms REAL,
            packet_loss_pct REAL, bridge_latency_p99_ms REAL, codec_chain TEXT, tags TEXT, end_reason TEXT,
            report TEXT NOT NULL);
        CREATE INDEX call_quality_tenant_started ON call_quality (tenant, started_at);
        INSERT INTO schema_version (version, description) VALUES (1, 'v1');
    """)
    conn.close()
    report = make_report("CA-old")
    store = open_store(db_url(path))
    assert store.schema_version() == 2
    store.write(report)
    assert store.get("CA-old") == report
    store.close()


def test_postgres_schema_matches_sqlite_columns(postgres_server: PgServer, postgres_url: str) -> None:
    for _ in range(2):
        open_store(postgres_url).close()
    schema = postgres_url.rsplit("%3D", 1)[1]
    with psycopg.connect(postgres_server.url) as conn:
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_version ORDER BY version")]
        cols = {r[0]: r[1] for r in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'call_quality' ORDER BY ordinal_position", (schema,))}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))}
    assert versions == [1, 2]
    assert list(cols) == ["call_sid", "tenant", "started_at", "ended_at", "duration_s", "mos", "r", "band",
                          "dominant_impairment", "latency_ms", "jitter_ms", "packet_loss_pct",
                          "bridge_latency_p99_ms", "codec_chain", "tags", "end_reason", "report"]
    assert cols["ended_at"] == "timestamp with time zone" and cols["report"] == "jsonb"
    assert {"call_quality_tenant_started", "call_quality_tenant_ended", "alerts_one_firing"} <= indexes


def test_many_instances_migrating_one_postgres_at_once_apply_each_migration_once(
        postgres_server: PgServer, postgres_url: str) -> None:
    def opened(_: int) -> int:
        store = open_store(postgres_url)
        try:
            return store.schema_version()
        finally:
            store.close()
    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(opened, range(6))) == [SCHEMA_VERSION] * 6
    schema = postgres_url.rsplit("%3D", 1)[1]
    with psycopg.connect(postgres_server.url) as conn:
        assert [r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_version ORDER BY 1")] == [1, 2]


def test_newer_schema_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    store._db.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 'x')")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        open_store(db_url(tmp_path / "afile" / "m.db"))


# -- write, get, list ---------------------------------------------------------------------------

def test_write_then_get_returns_the_full_report_and_fills_the_columns(store_url: str) -> None:
    report = make_report("CA1", lose_every=25)
    store = open_store(store_url)
    store.write(report)
    assert store.get("CA1") == report
    assert store.get("CA-unknown") is None
    [row] = store.list()
    assert row["latency_ms"] == 140.0  # the outbound (caller's ear) delay, not the inbound 90
    assert row["jitter_ms"] == report["inbound"]["jitter_ms"] > 0.0
    assert row["jitter_ms"] != report["outbound"]["jitter_ms"]
    assert row["packet_loss_pct"] == pytest.approx(100 * 9 / 249)  # frames 25..225 of 1..249 lost
    assert row["bridge_latency_p99_ms"] == 31.0  # the worse of 12 and 31
    assert row["mos"] == report["mos"] and row["band"] == report["band"]
    assert row["dominant_impairment"] == report["dominant_impairment"]
    assert row["tags"] == {"agent": "support", "region": "us1"}
    assert (row["codec_chain"], row["end_reason"], row["tenant"]) == ("pcmu -> g711", "stop", "acme")
    assert (row["started_at"], row["ended_at"]) == ("2026-05-01T10:00:00.000Z", "2026-05-01T10:00:05.000Z")
    assert "report" not in row
    store.close()


def test_a_version_1_report_still_stores_and_reads(store_url: str) -> None:
    # Reports written before report_version 2 have no version, no jitter_max_ms and no media-clock
    # counters; they keep reading as they were written.
    report = make_report("CA-v1", lose_every=25)
    assert report.pop("report_version") == 2
    for side in ("inbound", "outbound"):
        for key in ("jitter_max_ms", "jitter_last_ms", "chunk_gaps", "timestamp_jumps", "timestamp_backwards"):
            del report[side][key]
    store = open_store(store_url)
    store.write(report)
    assert store.get("CA-v1") == report
    [row] = store.list()
    assert row["jitter_ms"] == report["inbound"]["jitter_ms"]
    assert "jitter" in format_report(report) and "(max -)" in format_report(report)
    store.close()


def test_nullable_columns_stay_null() -> None:
    report = make_report("CA1", inbound_p99_ms=None, outbound_p99_ms=None)
    report["inbound"]["jitter_ms"] = None
    row = summary_row(report)
    assert row["bridge_latency_p99_ms"] is None
    assert row["jitter_ms"] is None
    assert summary_row(make_report("CA2", inbound_p99_ms=None))["bridge_latency_p99_ms"] == 31.0
    with pytest.raises(StoreError, match="call_sid"):
        summary_row(stored({"mos": 4.0}))


def test_write_upserts_by_call_sid(store_url: str) -> None:
    store = open_store(store_url)
    store.write(make_report("CA1", tenant="acme"))
    second = make_report("CA1", tenant="globex", lose_every=10, end_reason="hangup")
    store.write(second)
    rows = store.list()
    assert len(rows) == 1
    assert rows[0]["tenant"] == "globex" and rows[0]["end_reason"] == "hangup"
    assert rows[0]["mos"] == second["mos"]
    assert store.get("CA1") == second
    store.close()


def test_list_is_newest_first_with_tenant_filter_and_limit(store_url: str) -> None:
    store = open_store(store_url)
    for sid, tenant, started in [("CA1", "acme", "2026-05-01T10:00:00.000Z"),
                                 ("CA2", "globex", "2026-05-01T12:00:00.000Z"),
                                 ("CA3", "acme", "2026-05-01T11:00:00.000Z"),
                                 ("CA4", "acme", None),
                                 ("CA5", "acme", "2026-04-30T23:59:59.000Z")]:
        store.write(make_report(sid, tenant=tenant, started_at=started))
    assert [r["call_sid"] for r in store.list()] == ["CA2", "CA3", "CA1", "CA5", "CA4"]
    assert [r["call_sid"] for r in store.list(tenant="acme")] == ["CA3", "CA1", "CA5", "CA4"]
    assert [r["call_sid"] for r in store.list(tenant="acme", limit=2)] == ["CA3", "CA1"]
    assert store.list(tenant="nobody") == []
    with pytest.raises(StoreError):
        store.list(limit=0)
    store.close()


def test_mos_points_take_calls_by_end_time_in_a_half_open_window(store_url: str) -> None:
    store = open_store(store_url)
    for sid, tenant, ended in [("CA1", "acme", "2026-05-01T10:00:00.000Z"), ("CA2", "acme", "2026-05-01T10:05:00.000Z"),
                               ("CA3", "globex", "2026-05-01T10:03:00.000Z"), ("CA4", None, "2026-05-01T10:04:00.000Z"),
                               ("CA5", "acme", None)]:
        store.write(make_report(sid, tenant=tenant, ended_at=ended))
    points = store.mos_points("2026-05-01T10:00:00.000Z", "2026-05-01T10:05:00.000Z")
    assert [(p.tenant, p.ended_s) for p in points] == [("globex", 1777629780.0), ("unknown", 1777629840.0),
                                                        ("acme", 1777629900.0)]
    assert [p.mos for p in store.mos_points("2026-05-01T09:00:00.000Z", "2026-05-01T11:00:00.000Z", "acme")] == \
        [store.get("CA1")["mos"], store.get("CA2")["mos"]]  # type: ignore[index]
    assert store.last_calls() == {"acme": "2026-05-01T10:05:00.000Z", "globex": "2026-05-01T10:03:00.000Z",
                                  "unknown": "2026-05-01T10:04:00.000Z"}
    assert store.last_calls("unknown") == {"unknown": "2026-05-01T10:04:00.000Z"}
    assert store.last_calls("globex") == {"globex": "2026-05-01T10:03:00.000Z"}
    store.close()


def test_tenants_keep_a_plan_and_a_token_hash(store_url: str) -> None:
    store = open_store(store_url)
    assert store.tenant("acme") is None
    rec = store.set_tenant("acme", "growth", token_hash("t0k"), "2026-05-01T10:00:00.000Z")
    assert (rec.plan, rec.token_sha256, rec.updated_at) == ("growth", token_hash("t0k"), "2026-05-01T10:00:00.000Z")
    rec = store.set_tenant("acme", "starter", None, "2026-05-02T10:00:00.000Z")
    assert (rec.plan, rec.token_sha256) == ("starter", token_hash("t0k"))  # None keeps the token
    store.set_tenant("globex", "scale", None, "2026-05-02T10:00:00.000Z")
    assert [t.tenant for t in store.tenants()] == ["acme", "globex"]
    with pytest.raises(StoreError, match="unknown plan"):
        store.set_tenant("acme", "platinum", None, "2026-05-02T10:00:00.000Z")  # type: ignore[arg-type]
    store.close()


def test_one_firing_alert_per_tenant_and_rule_even_across_connections(store_url: str) -> None:
    a, b = open_store(store_url), open_store(store_url)
    first = a.open_alert("acme", "mos_low", "2026-05-01T10:05:00.000Z", 3.4, 12, 4.0)
    assert first is not None and first.state == "firing" and first.mos_at_fire == 3.4
    assert b.open_alert("acme", "mos_low", "2026-05-01T10:05:01.000Z", 3.3, 12, 4.0) is None
    assert b.open_alert("globex", "mos_low", "2026-05-01T10:06:00.000Z", 3.5, 4, 4.0) is not None
    assert [x.tenant for x in a.firing_alerts()] == ["globex", "acme"]
    assert b.resolve_alert(first.id, "2026-05-01T10:20:00.000Z", 4.2)
    assert not a.resolve_alert(first.id, "2026-05-01T10:21:00.000Z", 4.3)  # resolved once
    [resolved] = a.alerts(tenant="acme", state="resolved")
    assert (resolved.resolved_at, resolved.mos_at_resolve) == ("2026-05-01T10:20:00.000Z", 4.2)
    again = a.open_alert("acme", "mos_low", "2026-05-01T11:00:00.000Z", 3.1, 9, 4.0)
    assert again is not None and again.id != first.id
    assert [x.id for x in a.alerts(tenant="acme")] == [again.id, first.id]
    a.close()
    b.close()


def test_only_one_postgres_connection_holds_the_leader_lock(postgres_url: str) -> None:
    a, b = open_store(postgres_url), open_store(postgres_url)
    assert a.try_leader_lock()
    assert not b.try_leader_lock()
    a.close()  # the lock goes with the connection: a dead leader hands over
    # The server drops the lock when a's backend exits, a moment after the client hangs up;
    # the alert loop retries each tick, so the handover need only be prompt, not instant.
    deadline = time.monotonic() + 10.0
    while not b.try_leader_lock():
        assert time.monotonic() < deadline, "the lock never passed to the second connection"
        time.sleep(0.02)
    b.close()


# -- the background writer ----------------------------------------------------------------------

def test_writer_drains_every_submitted_report_on_close(store_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    writer = ReportWriter(store_url, spool_path=spool)
    reports = [make_report(f"CA{i:03d}", started_at=f"2026-05-01T10:{i // 60:02d}:{i % 60:02d}.000Z")
               for i in range(200)]
    for r in reports:
        writer.submit(r)
    writer.close(timeout=30.0)
    assert writer.stats.written == 200 and writer.stats.spooled == 0
    store = open_store(store_url)
    assert len(store.list(limit=1000)) == 200
    assert store.get("CA137") == reports[137]
    assert store.list(limit=1)[0]["call_sid"] == "CA199"
    store.close()
    assert not spool.exists()


MANY_WRITERS = """
import sys
from pathlib import Path
from bridge.ops.store_writer import ReportWriter
from tests.bridge.ops.test_store import make_report
url, i, spool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
writer = ReportWriter(url, spool_path=Path(spool), retry_s=0.2)
for n in range(40):
    writer.submit(make_report(f"CA-{i}-{n:02d}", tenant=f"t{i}"))
writer.close(60.0)
print(writer.stats.written, writer.stats.spooled, writer.stats.spool_depth)
"""


def test_many_processes_write_to_one_sqlite_file(tmp_path: Path) -> None:
    """The workers of serve --workers N: one writer each, started together on a file none created."""
    path = tmp_path / "m.db"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", MANY_WRITERS, db_url(path), str(i),
                               str(tmp_path / f"spool{i}.jsonl")], env=env, stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert all(out[0] == "40" and out[2] == "0" for out in outs), outs  # spooled on a lock at most, then written
    store = open_store(db_url(path))
    assert len(store.list(limit=1000)) == 120 and len(store.list(tenant="t2", limit=1000)) == 40
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_many_bridges_write_to_one_postgres(postgres_url: str, tmp_path: Path) -> None:
    writers = [ReportWriter(postgres_url, spool_path=tmp_path / f"spool{i}.jsonl") for i in range(3)]
    for n in range(40):
        for i, w in enumerate(writers):
            w.submit(make_report(f"CA-{i}-{n:02d}", tenant=f"t{i}"))
    for w in writers:
        w.close(timeout=60.0)
    assert [w.stats.written for w in writers] == [40, 40, 40]
    store = open_store(postgres_url)
    assert len(store.list(limit=1000)) == 120 and len(store.list(tenant="t2", limit=1000)) == 40
    store.close()


def test_locked_database_spools_and_the_next_writer_writes_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "m.db"
    url = db_url(path)
    open_store(url).close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    report = make_report("CA-locked")
    with caplog.at_level(logging.WARNING, logger="mosbridge.store"):
        writer = ReportWriter(url, attempts=3, backoff_s=0.0, busy_timeout_s=0.05, retry_s=60.0)
        writer.submit(report)
        writer.close(timeout=30.0)
    assert writer.stats == writer.stats.__class__(written=0, spooled=1, reimported=0, webhook_failures=0,
                                                  spool_depth=1)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "CA-locked" in r.getMessage()]
    assert len(failures) >= 3  # each attempt logged with the call_sid
    spill = tmp_path / "m.db.spill.jsonl"
    [line] = spill.read_text().splitlines()
    assert json.loads(line) == report

    locker.execute("ROLLBACK")
    locker.close()
    again = ReportWriter(url)
    again.close(timeout=30.0)
    assert again.stats.reimported == 1 and again.stats.spool_depth == 0
    assert not spill.exists()
    store = open_store(url)
    assert store.get("CA-locked") == report
    store.close()


def test_postgres_outage_spools_in_order_and_drains_while_running(
        postgres_server: PgServer, postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proxy = TcpProxy(postgres_server.address)
    url = postgres_server.via(postgres_url, proxy.port)
    spool = tmp_path / "spool.jsonl"
    depths: list[int] = []
    results: list[str] = []
    writer = ReportWriter(url, spool_path=spool, backoff_s=0.0, retry_s=0.2, max_retry_s=0.4,
                          on_write=results.append, on_spool_depth=depths.append)
    try:
        writer.submit(make_report("CA-before"))
        _wait(lambda: writer.stats.written == 1)
        proxy.cut()
        with caplog.at_level(logging.ERROR, logger="mosbridge.store"):
            for i in range(5):
                writer.submit(make_report(f"CA-down-{i}", ended_at=f"2026-05-01T10:00:0{i}.000Z"))
            _wait(lambda: writer.stats.spool_depth == 5)
            time.sleep(0.6)  # retries happen, and fail, while the database is away
        assert [json.loads(x)["call_sid"] for x in spool.read_text().splitlines()] == [f"CA-down-{i}" for i in range(5)]
        assert any("CA-down-0" in r.getMessage() for r in caplog.records)
        proxy.restore()
        writer.submit(make_report("CA-after"))
        _wait(lambda: writer.stats.spool_depth == 0 and writer.stats.written == 7)
    finally:
        writer.close(timeout=30.0)
        proxy.cut()
    assert not spool.exists()
    assert writer.stats.reimported == 6  # five spooled during the outage, and the one that queued behind them
    assert depths[-1] == 0 and max(depths) >= 5
    assert results.count("spooled") == 6 and results.count("ok") == 7
    store = open_store(postgres_url)
    want = {"CA-before", "CA-after"} | {f"CA-down-{i}" for i in range(5)}
    assert {r["call_sid"] for r in store.list(limit=10)} == want
    store.close()


def test_spool_left_by_a_crashed_process_is_written_at_start(store_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    good = make_report("CA-good")
    spool.write_text(json.dumps(good) + "\n" + "{truncated\n" + "\n")
    writer = ReportWriter(store_url, spool_path=spool)
    writer.close(timeout=30.0)
    assert writer.stats.reimported == 1 and writer.stats.spool_depth == 0
    assert not spool.exists()
    assert (tmp_path / "spool.jsonl.bad").read_text() == "{truncated\n"  # kept, out of the way
    store = open_store(store_url)
    assert store.get("CA-good") == good
    store.close()


def test_unwritable_store_and_spool_leave_the_report_in_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "afile").write_text("x")  # the database's parent is a file: nothing can be created
    report = make_report("CA-nowhere")
    with caplog.at_level(logging.ERROR, logger="mosbridge.store"):
        writer = ReportWriter(db_url(tmp_path / "afile" / "m.db"), attempts=2, backoff_s=0.0)
        writer.submit(report)
        writer.close(timeout=30.0)
    assert writer.stats.written == 0 and writer.stats.spooled == 0
    last = [r.getMessage() for r in caplog.records if "cannot spool" in r.getMessage()][-1]
    assert "cannot spool report for call_sid=CA-nowhere" in last
    assert json.loads(last.split("report: ", 1)[1]) == report


def test_submit_after_close_spools_instead_of_dropping(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    writer = ReportWriter(url)
    writer.close(timeout=30.0)
    writer.submit(make_report("CA-late"))
    assert json.loads((tmp_path / "m.db.spill.jsonl").read_text())["call_sid"] == "CA-late"


def _wait(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# -- webhook ------------------------------------------------------------------------------------

def test_webhook_receives_the_report_json(tmp_path: Path,
                                          hook: tuple[str, Received]) -> None:
    url, received = hook
    reports = [make_report("CA-h1"), make_report("CA-h2", lose_every=5)]
    writer = ReportWriter(db_url(tmp_path / "m.db"), webhook_url=url)
    for r in reports:
        writer.submit(r)
    writer.close(timeout=30.0)
    assert [(p, ct) for p, ct, _ in received] == [("/hooks/quality", "application/json")] * 2
    assert [json.loads(body) for _, _, body in received] == reports
    assert writer.stats.webhook_failures == 0 and writer.stats.written == 2


def test_failing_webhook_is_retried_twice_and_does_not_stop_the_write(
        tmp_path: Path, failing_hook: tuple[str, Received],
        caplog: pytest.LogCaptureFixture) -> None:
    url, received = failing_hook
    with caplog.at_level(logging.ERROR, logger="mosbridge.store"):
        writer = ReportWriter(db_url(tmp_path / "m.db"), webhook_url=url, backoff_s=0.0)
        writer.submit(make_report("CA-h500"))
        writer.close(timeout=30.0)
    assert len(received) == 3  # one POST and two retries
    assert writer.stats.webhook_failures == 1 and writer.stats.written == 1
    assert sum("webhook POST of report for call_sid=CA-h500" in r.getMessage() for r in caplog.records) == 3
    store = open_store(db_url(tmp_path / "m.db"))
    assert store.get("CA-h500") is not None
    store.close()


def test_a_report_with_a_nul_or_an_8000_character_tenant_is_stored(store_url: str, tmp_path: Path) -> None:
    # PostgreSQL's jsonb refuses \u0000 and its btree refuses an 8000-character key; the report is
    # cleaned and bounded for the columns, and the report JSON keeps the full values.
    nul = make_report("CA-nul", tags={"region": "us\x00east"})
    long = make_report("CA-long", tenant="t" * 8000)
    after = make_report("CA-after")
    writer = ReportWriter(store_url, spool_path=tmp_path / "spool.jsonl")
    for r in (nul, long, after):
        writer.submit(r)
    writer.close(timeout=30.0)
    assert (writer.stats.written, writer.stats.spooled, writer.stats.refused) == (3, 0, 0)
    store = open_store(store_url)
    stored_nul, stored_long = store.get("CA-nul"), store.get("CA-long")
    assert stored_nul is not None and stored_nul["tags"]["region"] == "us\ufffdeast"
    assert stored_long is not None and stored_long["tenant"] == "t" * 8000  # the JSON keeps it whole
    assert {r["tenant"] for r in store.list(limit=10)} >= {"t" * 256}  # the column is cut
    assert store.get("CA-after") == after
    store.close()


def test_a_report_the_database_refuses_goes_to_bad_and_the_queue_moves_on(postgres_url: str,
                                                                          tmp_path: Path) -> None:
    # NaN is JSON to Python but not to PostgreSQL's jsonb: a report it can never take.
    refused = make_report("CA-nan", extra_figure=float("nan"))
    spool = tmp_path / "spool.jsonl"
    writer = ReportWriter(postgres_url, spool_path=spool)
    writer.submit(refused)
    writer.submit(make_report("CA-next"))
    writer.close(timeout=30.0)
    assert (writer.stats.written, writer.stats.spooled, writer.stats.refused) == (1, 0, 1)
    [line] = spool.with_name("spool.jsonl.bad").read_text().splitlines()
    bad = json.loads(line)
    assert bad["report"]["call_sid"] == "CA-nan" and "json" in bad["reason"].lower()
    store = open_store(postgres_url)
    assert store.get("CA-nan") is None and store.get("CA-next") is not None
    store.close()
    assert not spool.exists()


def test_a_refused_report_in_the_spool_does_not_block_the_ones_behind_it(postgres_url: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    spool.write_text(json.dumps(make_report("CA-nan", extra_figure=float("nan"))) + "\n"
                     + json.dumps(make_report("CA-behind")) + "\n")
    writer = ReportWriter(postgres_url, spool_path=spool)
    writer.close(timeout=30.0)
    assert (writer.stats.reimported, writer.stats.refused, writer.stats.spool_depth) == (1, 1, 0)
    store = open_store(postgres_url)
    assert store.get("CA-behind") is not None
    store.close()
