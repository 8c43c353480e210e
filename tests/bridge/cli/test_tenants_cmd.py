"""``mosbridge tenants`` and ``mosbridge alerts`` on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from bridge.cli.main import main
from bridge.ops.store import open_store, token_hash


def test_set_a_plan_with_a_token_then_list(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "set", "acme", "--plan", "growth", "--rotate-token", "--database-url", store_url]) == 0
    out = capsys.readouterr().out
    token = out.split("API token (shown once): ", 1)[1].strip()
    store = open_store(store_url)
    record = store.tenant("acme")
    assert record is not None and record.plan == "growth" and record.token_sha256 == token_hash(token)
    store.close()
    assert main(["tenants", "set", "acme", "--plan", "scale", "--database-url", store_url]) == 0
    assert "API token" not in capsys.readouterr().out
    assert main(["tenants", "list", "--json", "--database-url", store_url]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["tenant"], row["plan"], row["has_token"]) == ("acme", "scale", True)
    with pytest.raises(SystemExit) as exc:
        main(["tenants", "set", "acme", "--plan", "gold", "--database-url", store_url])
    assert exc.value.code == 2


def test_alerts_lists_what_fired(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(store_url)
    alert = store.open_alert("acme", "tenant_mos_low", "2026-05-01T10:05:00.000Z", 3.42, 12, 4.0)
    assert alert is not None
    store.resolve_alert(alert.id, "2026-05-01T10:30:00.000Z", 4.15)
    store.open_alert("globex", "tenant_mos_low", "2026-05-01T11:00:00.000Z", 3.1, 5, 4.0)
    store.close()
    assert main(["alerts", "--database-url", store_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2026-05-01T11:00:00.000Z  globex") and lines[0].endswith("FIRING")
    assert "MOS 3.42 over 12 calls  resolved 2026-05-01T10:30:00.000Z (MOS 4.15)" in lines[1]
    assert main(["alerts", "--state", "firing", "--json", "--database-url", store_url]) == 0
    assert [a["tenant"] for a in json.loads(capsys.readouterr().out)] == ["globex"]
