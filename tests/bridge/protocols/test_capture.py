"""The capture format: reading, versioning, bad files with line numbers, the recorder's limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bridge.cli.main import main
from bridge.core.config import CallConfig
from bridge.live.recorder import CapturePolicy, CaptureRecorder
from bridge.protocols.capture import CaptureError, header_line, message_line, parse_capture

HEADER = header_line("2026-11-25T00:00:00.000Z", "test", CallConfig())
START = ('{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1",'
         '"callSid":"CA1","tracks":["inbound"],"customParameters":{"tenant":"t","patient_id":"P-1"},'
         '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}')


def test_header_and_lines_round_trip() -> None:
    lines = [HEADER, message_line(0.5, "twilio_in", START, raw_above=4096),
             message_line(0.6, "twilio_in", "{oops", raw_above=4096),
             json.dumps({"t": 0.7, "dir": "twilio_rtt", "rtt_ms": 12.5}), json.dumps({"t": 0.8, "dir": "timer"})]
    cap = parse_capture(line + "\n" for line in lines)
    assert cap.header["settings"]["ai_format"] == "pcmu" and "pseudonym_key" not in cap.header["settings"]
    assert [r.dir for r in cap.records] == ["twilio_in", "twilio_in", "twilio_rtt", "timer"]
    assert json.loads(cap.records[0].text or "")["start"]["callSid"] == "CA1"
    assert cap.records[1].text == "{oops"  # not JSON: kept raw, exactly
    assert cap.records[2].rtt_ms == 12.5
    assert cap.config() == CallConfig(pseudonym_key=CallConfig().pseudonym_key)


def test_phi_in_start_is_pseudonymized_when_written() -> None:
    line = message_line(0.1, "twilio_in", START, raw_above=4096, pseudonym_key=b"k", phi_keys=["patient_id"])
    assert "P-1" not in line and '"tenant":"t"' in line


@pytest.mark.parametrize(
    ("lines", "line_no", "fragment"),
    [
        ([HEADER, '{"t": "soon", "dir": "timer"}'], 2, "'t' must be a number"),
        ([HEADER, '{"t": 1, "dir": "sideways"}'], 2, "unknown 'dir'"),
        ([HEADER, '{"t": 1, "dir": "twilio_in"}'], 2, "needs 'msg'"),
        ([HEADER, "not json at all", '{"t": 1, "dir": "timer"}'], 2, "not valid JSON"),
        ([HEADER, '{"t": 1, "dir": "host_lag", "counts": [1, 2]}'], 2, "10 cumulative tick counts"),
        ([HEADER, '{"t": 1, "dir": "host_lag", "counts": [5, 4, 4, 4, 4, 4, 4, 4, 4, 4]}'], 2, "cumulative"),
        ([HEADER, '{"t": 1, "dir": "host_lag", "counts": [1, 1, 1, 1, 1, 1, 1, 1, 1, true]}'], 2, "cumulative"),
        (['{"capture": 99}'], 1, "newer than this mosbridge"),
        (['{"hello": 1}'], 1, "neither a capture header"),
        (["[1, 2]"], 1, "not a JSON object"),
    ],
)
def test_bad_files_name_the_line(lines: list[str], line_no: int, fragment: str) -> None:
    with pytest.raises(CaptureError) as exc:
        parse_capture(line + "\n" for line in lines)
    assert exc.value.line_no == line_no
    assert fragment in str(exc.value)


def test_truncated_last_line_is_tolerated_and_said() -> None:
    cap = parse_capture([HEADER + "\n", '{"t": 1, "dir": "timer"}\n', '{"t": 2, "di'])
    assert len(cap.records) == 1
    assert cap.warnings and "line 3: truncated last line ignored" in cap.warnings[0]


def test_replay_cli_bad_file_exits_2_with_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(HEADER + "\n" + '{"t": 1, "dir": "nope"}\n')
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(bad)])
    assert exc.value.code == 2
    assert "line 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(tmp_path / "missing.jsonl")])
    assert exc.value.code == 2


def test_replay_cli_truncated_capture_still_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    media = ('{"event":"media","sequenceNumber":"%d","streamSid":"MZ1","media":{"track":"inbound","chunk":"%d",'
             '"timestamp":"%d","payload":"%s"}}')
    lines = [HEADER, json.dumps({"t": 0.0, "dir": "ai_connected"}),
             message_line(0.01, "twilio_in", START, raw_above=4096)]
    lines += [message_line(0.02 + i * 0.02, "twilio_in", media % (i + 2, i + 1, i * 20, "/" * 216), raw_above=4096)
              for i in range(50)]
    f = tmp_path / "cut.jsonl"
    f.write_text("\n".join(lines) + "\n" + '{"t": 9, "dir": "twi')
    assert main(["replay", str(f), "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["inbound"]["frames"] == 50 and report["end_reason"] == "end of capture"
    assert "truncated last line" in out.err and "ends without a hangup" in out.err


def _record_calls(tmp_path: Path, policy: CapturePolicy, n: int, lines_per_call: int) -> list[Path]:
    rec = CaptureRecorder(policy, CallConfig(), "test")
    for i in range(n):
        cap = rec.open_call("2026-11-25T00:00:00.000Z")
        cap.decide(True)
        for j in range(lines_per_call):
            cap.event(j * 0.02, "timer")
        cap.close(f"CA{i}")
        time.sleep(0.01)
    rec.close()
    return sorted(policy.directory.glob("*.jsonl"))


def test_recorder_caps_file_size(tmp_path: Path) -> None:
    policy = CapturePolicy(tmp_path / "c", max_file_bytes=8192)
    files = _record_calls(tmp_path, policy, 1, 2000)
    assert [f.name for f in files] == ["CA0.jsonl"]
    assert 4096 < files[0].stat().st_size <= 8192
    assert parse_capture(files[0].open()).header["capture"] == 2


def test_recorder_keeps_the_directory_under_its_cap(tmp_path: Path) -> None:
    policy = CapturePolicy(tmp_path / "c", max_total_bytes=3 * 4000)
    files = _record_calls(tmp_path, policy, 6, 150)  # each file ~4 KB
    names = [f.name for f in files]
    assert "CA5.jsonl" in names and "CA0.jsonl" not in names
    assert sum(f.stat().st_size for f in files) <= 3 * 4000


def test_policy_off_by_default_on_per_tenant_or_per_call(tmp_path: Path) -> None:
    off = CapturePolicy(tmp_path, per_call=False)
    assert not off.wants("acme", {}) and not off.wants("acme", {"capture": "1"})
    tenants = CapturePolicy(tmp_path, tenants=frozenset({"acme"}), per_call=False)
    assert tenants.wants("acme", {}) and not tenants.wants("beta", {})
    assert CapturePolicy(tmp_path, tenants=frozenset({"*"})).wants(None, {})
    per_call = CapturePolicy(tmp_path)
    assert per_call.wants("beta", {"capture": "1"}) and not per_call.wants("beta", {})
