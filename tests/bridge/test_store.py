"""The SQLite report store and its background writer, on real files and a real HTTP server."""

from __future__ import annotations

import http.server
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.store import SCHEMA_VERSION, StoreError, open_store, spill_path, sqlite_path, summary_row
from bridge.store_writer import ReportWriter
from quality.impairments import CodecChain
from quality.latency import LatencySummary
from quality.meter import DirectionMeter
from quality.playout import FixedPlayout
from quality.report import CallReport, DirectionReport, assess, direction_input

G711 = CodecChain.of("g711")


def _direction(name: str, lose_every: int | None, jitter_s: float, delay_ms: float,
               latency: LatencySummary | None) -> DirectionReport:
    meter = DirectionMeter(FixedPlayout(0.060))
    for i in range(1, 251):
        if lose_every is not None and i % lose_every == 0:
            continue
        # Every other frame arrives jitter_s late: a fixed, deterministic jitter pattern.
        meter.update(i, i * 0.020, i * 0.020 + 0.030 + (jitter_s if i % 2 else 0.0))
    figures = meter.figures()
    return DirectionReport(name, figures, delay_ms, G711.name,
                           assess(direction_input(figures, delay_ms, G711)), latency)


def make_report(call_sid: str, tenant: str | None = "acme", started_at: str | None = "2026-05-01T10:00:00Z",
                *, lose_every: int | None = None, inbound_p99_ms: float | None = 12.0,
                outbound_p99_ms: float | None = 31.0, **extra: Any) -> dict[str, Any]:
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
    d.update(started_at=started_at, ended_at="2026-05-01T10:00:05Z", end_reason="stop",
             codec_chain="pcmu -> g711")
    d.update(extra)
    roundtripped: dict[str, Any] = json.loads(json.dumps(d))
    return roundtripped


def db_url(path: Path) -> str:
    return f"sqlite:///{path}"  # path is absolute, so this is sqlite:////tmp/...


# -- URLs and migrations ------------------------------------------------------------------------

def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sqlite_path("sqlite:///calls.db") == "calls.db"
    assert sqlite_path("sqlite:////var/lib/m.db") == "/var/lib/m.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("data/m.db") == "data/m.db"
    assert spill_path("sqlite:///:memory:") is None
    assert spill_path("sqlite:///calls.db") == Path("calls.db.spill.jsonl")
    with pytest.raises(StoreError, match="not supported yet"):
        open_store("postgresql://db.example/mosbridge")
    with pytest.raises(StoreError, match="no database file"):
        open_store("sqlite:///")
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel.db").close()
    open_store(str(tmp_path / "bare.db")).close()
    assert (tmp_path / "rel.db").is_file()
    assert (tmp_path / "bare.db").is_file()


def test_migration_is_versioned_and_idempotent(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    for _ in range(2):
        store = open_store(url)
        store.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == [1]
    assert SCHEMA_VERSION == 1
    cols = [r[1] for r in conn.execute("PRAGMA table_info(call_quality)")]
    assert cols == ["call_sid", "tenant", "started_at", "ended_at", "duration_s", "mos", "r", "band",
                    "dominant_impairment", "latency_ms", "jitter_ms", "packet_loss_pct",
                    "bridge_latency_p99_ms", "codec_chain", "tags", "end_reason", "report"]
    pk = [r[1] for r in conn.execute("PRAGMA table_info(call_quality)") if r[5]]
    assert pk == ["call_sid"]
    index_cols = [r[2] for r in conn.execute("PRAGMA index_info(call_quality_tenant_started)")]
    assert index_cols == ["tenant", "started_at"]
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    open_store(db_url(tmp_path / "m.db")).close()
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("INSERT INTO schema_version (version, description) VALUES (2, 'from the future')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(db_url(tmp_path / "m.db"))


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="cannot open"):
        open_store(db_url(tmp_path / "afile" / "m.db"))


# -- write, get, list ---------------------------------------------------------------------------

def test_write_then_get_returns_the_full_report_and_fills_the_columns(tmp_path: Path) -> None:
    report = make_report("CA1", lose_every=25)
    store = open_store(db_url(tmp_path / "m.db"))
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
    assert "report" not in row
    store.close()


def test_nullable_columns_stay_null() -> None:
    report = make_report("CA1", inbound_p99_ms=None, outbound_p99_ms=None)
    report["inbound"]["jitter_ms"] = None
    row = summary_row(report)
    assert row["bridge_latency_p99_ms"] is None
    assert row["jitter_ms"] is None
    assert summary_row(make_report("CA2", inbound_p99_ms=None))["bridge_latency_p99_ms"] == 31.0
    with pytest.raises(StoreError, match="call_sid"):
        summary_row({"mos": 4.0})


def test_write_upserts_by_call_sid(tmp_path: Path) -> None:
    store = open_store(db_url(tmp_path / "m.db"))
    store.write(make_report("CA1", tenant="acme"))
    second = make_report("CA1", tenant="globex", lose_every=10, end_reason="hangup")
    store.write(second)
    rows = store.list()
    assert len(rows) == 1
    assert rows[0]["tenant"] == "globex" and rows[0]["end_reason"] == "hangup"
    assert rows[0]["mos"] == second["mos"]
    assert store.get("CA1") == second
    store.close()


def test_list_is_newest_first_with_tenant_filter_and_limit(tmp_path: Path) -> None:
    store = open_store(db_url(tmp_path / "m.db"))
    for sid, tenant, started in [("CA1", "acme", "2026-05-01T10:00:00Z"),
                                 ("CA2", "globex", "2026-05-01T12:00:00Z"),
                                 ("CA3", "acme", "2026-05-01T11:00:00Z"),
                                 ("CA4", "acme", None),
                                 ("CA5", "acme", "2026-04-30T23:59:59Z")]:
        store.write(make_report(sid, tenant=tenant, started_at=started))
    assert [r["call_sid"] for r in store.list()] == ["CA2", "CA3", "CA1", "CA5", "CA4"]
    assert [r["call_sid"] for r in store.list(tenant="acme")] == ["CA3", "CA1", "CA5", "CA4"]
    assert [r["call_sid"] for r in store.list(tenant="acme", limit=2)] == ["CA3", "CA1"]
    assert store.list(tenant="nobody") == []
    with pytest.raises(StoreError):
        store.list(limit=0)
    store.close()


# -- the background writer ----------------------------------------------------------------------

def test_writer_drains_every_submitted_report_on_close(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    writer = ReportWriter(url)
    reports = [make_report(f"CA{i:03d}", started_at=f"2026-05-01T10:{i // 60:02d}:{i % 60:02d}Z")
               for i in range(200)]
    for r in reports:
        writer.submit(r)
    writer.close(timeout=30.0)
    assert writer.stats.written == 200 and writer.stats.spilled == 0
    store = open_store(url)
    assert len(store.list(limit=1000)) == 200
    assert store.get("CA137") == reports[137]
    assert store.list(limit=1)[0]["call_sid"] == "CA199"
    store.close()
    assert not spill_path(url).exists()  # type: ignore[union-attr]


def test_writer_rejects_unsupported_url_at_construction() -> None:
    with pytest.raises(StoreError, match="not supported yet"):
        ReportWriter("postgresql://db/mosbridge")


def test_locked_database_spills_and_the_next_writer_reimports(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "m.db"
    url = db_url(path)
    open_store(url).close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    report = make_report("CA-locked")
    with caplog.at_level(logging.WARNING, logger="mosbridge.store"):
        writer = ReportWriter(url, attempts=3, backoff_s=0.0, busy_timeout_s=0.05)
        writer.submit(report)
        writer.close(timeout=30.0)
    assert writer.stats == writer.stats.__class__(written=0, spilled=1, reimported=0, webhook_failures=0)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "CA-locked" in r.getMessage()]
    assert len(failures) == 3  # each attempt logged with the call_sid
    spill = tmp_path / "m.db.spill.jsonl"
    [line] = spill.read_text().splitlines()
    assert json.loads(line) == report

    locker.execute("ROLLBACK")
    locker.close()
    again = ReportWriter(url)
    again.close(timeout=30.0)
    assert again.stats.reimported == 1
    assert not spill.exists()
    store = open_store(url)
    assert store.get("CA-locked") == report
    store.close()


def test_reimport_keeps_lines_it_cannot_parse(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    spill = tmp_path / "m.db.spill.jsonl"
    good = make_report("CA-good")
    spill.write_text(json.dumps(good) + "\n" + "{truncated\n" + "\n")
    writer = ReportWriter(url)
    writer.close(timeout=30.0)
    assert writer.stats.reimported == 1
    assert spill.read_text() == "{truncated\n"
    store = open_store(url)
    assert store.get("CA-good") == good
    store.close()


def test_unwritable_store_and_spill_leave_the_report_in_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "afile").write_text("x")  # the database's parent is a file: nothing can be created
    report = make_report("CA-nowhere")
    with caplog.at_level(logging.ERROR, logger="mosbridge.store"):
        writer = ReportWriter(db_url(tmp_path / "afile" / "m.db"), attempts=2, backoff_s=0.0)
        writer.submit(report)
        writer.close(timeout=30.0)
    assert writer.stats.written == 0 and writer.stats.spilled == 0
    last = caplog.records[-1].getMessage()
    assert "cannot spill report for call_sid=CA-nowhere" in last
    assert json.loads(last.split("report: ", 1)[1]) == report


def test_submit_after_close_spills_instead_of_dropping(tmp_path: Path) -> None:
    url = db_url(tmp_path / "m.db")
    writer = ReportWriter(url)
    writer.close(timeout=30.0)
    writer.submit(make_report("CA-late"))
    assert json.loads((tmp_path / "m.db.spill.jsonl").read_text())["call_sid"] == "CA-late"


# -- webhook ------------------------------------------------------------------------------------

class _Hook(http.server.BaseHTTPRequestHandler):
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))  # type: ignore[attr-defined]
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FailingHook(_Hook):
    status = 500


def _serve(handler: type[_Hook]) -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    received: list[tuple[str, str, bytes]] = []
    server.received = received  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/quality", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def hook() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    yield from _serve(_Hook)


@pytest.fixture
def failing_hook() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    yield from _serve(_FailingHook)


def test_webhook_receives_the_report_json(tmp_path: Path,
                                          hook: tuple[str, list[tuple[str, str, bytes]]]) -> None:
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
        tmp_path: Path, failing_hook: tuple[str, list[tuple[str, str, bytes]]],
        caplog: pytest.LogCaptureFixture) -> None:
    url, received = failing_hook
    with caplog.at_level(logging.ERROR, logger="mosbridge.store"):
        writer = ReportWriter(db_url(tmp_path / "m.db"), webhook_url=url, backoff_s=0.0)
        writer.submit(make_report("CA-h500"))
        writer.close(timeout=30.0)
    assert len(received) == 3  # one POST and two retries
    assert writer.stats.webhook_failures == 1 and writer.stats.written == 1
    assert sum("webhook POST for call_sid=CA-h500" in r.getMessage() for r in caplog.records) == 3
    store = open_store(db_url(tmp_path / "m.db"))
    assert store.get("CA-h500") is not None
    store.close()
