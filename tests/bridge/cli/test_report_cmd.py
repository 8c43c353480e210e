"""``mosbridge report`` / ``mosbridge calls`` over a real SQLite file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import report as report_cmd
from bridge.ops.store import open_store
from tests.bridge.ops.test_store import make_report


def cli(*argv: str) -> int:
    """The subcommands on a parser of their own, as bridge/cli/main.py wires them."""
    parser = argparse.ArgumentParser(prog="mosbridge")
    sub = parser.add_subparsers(dest="command", required=True)
    report_cmd.add_parsers(sub)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = open_store(url)
    store.write(make_report("CA1", tenant="acme", started_at="2026-05-01T10:00:00Z"))
    store.write(make_report("CA2", tenant="globex", started_at="2026-05-01T12:00:00Z", lose_every=20))
    store.write(make_report("CA3", tenant="acme", started_at="2026-05-01T11:00:00Z", lose_every=4))
    store.close()
    return url


def test_report_json_is_exactly_the_stored_dict(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("report", "CA3", "--json", "--database-url", db) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == make_report("CA3", tenant="acme", started_at="2026-05-01T11:00:00Z",
                                          lose_every=4)


def test_report_summary_shows_the_figures(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    stored = make_report("CA3", tenant="acme", started_at="2026-05-01T11:00:00Z", lose_every=4)
    assert cli("report", "CA3", "--database-url", db) == 0
    out = capsys.readouterr().out
    assert f"MOS        {stored['mos']:.2f}  ({stored['band']})" in out
    assert f"dominant   {stored['dominant_impairment']}" in out
    assert stored["dominant_impairment"] == "loss"
    inbound, outbound = stored["inbound"], stored["outbound"]
    assert (f"jitter {inbound['jitter_ms']:.1f} ms (max {inbound['jitter_max_ms']:.1f} ms)  "
            f"loss {inbound['loss_pct']:.2f} %  "
            f"frames {inbound['frames']}  gaps {inbound['gaps']}") in out
    assert f"jitter {outbound['jitter_ms']:.1f} ms" in out
    assert "bridge latency  p50 4.0 ms  p99 12.0 ms  max 24.0 ms" in out  # inbound
    assert "bridge latency  p50 10.3 ms  p99 31.0 ms  max 62.0 ms" in out  # outbound
    assert "tags       agent=support  region=us1" in out
    assert out.index("inbound") < out.index("outbound")


def test_unknown_call_is_exit_1_with_a_message(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("report", "CA-nope", "--database-url", db) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no report for call CA-nope" in captured.err


def test_missing_database_is_reported_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    assert cli("report", "CA1", "--database-url", url) == 1
    assert cli("calls", "--database-url", url) == 1
    assert "no report database" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


def test_unsupported_scheme_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("calls", "--database-url", "mysql://db.example/mosbridge")
    assert exc.value.code == 2
    assert "not supported" in capsys.readouterr().err


def test_unreachable_postgres_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("calls", "--database-url", "postgresql://u:pw@127.0.0.1:1/none") == 1
    err = capsys.readouterr().err
    assert err.startswith("mosbridge: cannot open report store") and "pw@" not in err


def test_calls_on_postgres(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(postgres_url)
    store.write(make_report("CA-pg", tenant="acme", started_at="2026-05-01T10:00:00Z"))
    store.close()
    assert cli("calls", "--json", "--database-url", postgres_url) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["call_sid"], row["started_at"]) == ("CA-pg", "2026-05-01T10:00:00.000Z")


def test_database_url_comes_from_env_then_default(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MOSBRIDGE_DATABASE_URL", db)
    assert cli("report", "CA1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["call_sid"] == "CA1"

    monkeypatch.delenv("MOSBRIDGE_DATABASE_URL")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert cli("report", "CA1") == 1  # the default, ./mosbridge.db, does not exist here
    store = open_store("sqlite:///mosbridge.db")
    store.write(make_report("CA-default"))
    store.close()
    assert (workdir / "mosbridge.db").is_file()
    assert cli("report", "CA-default", "--json") == 0
    assert json.loads(capsys.readouterr().out)["call_sid"] == "CA-default"


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_calls_table_is_newest_first(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("calls", "--database-url", db) == 0
    rows = _table(capsys.readouterr().out)
    assert rows[0] == ["started_at", "call_sid", "tenant", "mos", "band", "dominant", "loss%", "jitter_ms"]
    assert [r[1] for r in rows[1:]] == ["CA2", "CA3", "CA1"]
    ca3 = make_report("CA3", lose_every=4)
    assert rows[2] == ["2026-05-01T11:00:00.000Z", "CA3", "acme", f"{ca3['mos']:.2f}", ca3["band"],
                       ca3["dominant_impairment"], f"{ca3['inbound']['loss_pct']:.2f}",
                       f"{ca3['inbound']['jitter_ms']:.1f}"]


def test_calls_tenant_limit_and_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("calls", "--tenant", "acme", "--database-url", db) == 0
    assert [r[1] for r in _table(capsys.readouterr().out)[1:]] == ["CA3", "CA1"]
    assert cli("calls", "--limit", "1", "--json", "--database-url", db) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert [r["call_sid"] for r in rows] == ["CA2"]
    assert rows[0]["tenant"] == "globex" and rows[0]["tags"] == {"agent": "support", "region": "us1"}
    assert cli("calls", "--tenant", "nobody", "--database-url", db) == 0
    assert capsys.readouterr().out.strip() == "no calls"


def test_calls_limit_must_be_positive(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("calls", "--limit", "0", "--database-url", db)
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
