"""The typed report: ``Report.to_json`` writes exactly the keys ``StoredReport`` declares, for real
full and fallback reports out of a call core, and the stamps and notes come as new records."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core import call as call_module
from bridge.core.call import CallCore
from bridge.core.events import CallEnded
from bridge.core.report import Report
from bridge.core.report_json import (
    AiLegJson,
    AiTurnJson,
    BridgeHostJson,
    CodecChains,
    PlaybackJson,
    RttJson,
    StoredReport,
)
from bridge.ops.store import open_store
from tests.bridge.core.test_call import STOP, events, media, started_core
from tests.bridge.core.test_call_webrtc import OPUS

REQUIRED = StoredReport.__required_keys__
OPTIONAL = StoredReport.__optional_keys__
LAG_COUNTS = [600, 800, 950, 960, 970, 995, 1000, 1000, 1000, 1000]  # p99 ~44 ms: saturated


def _ended(core: CallCore) -> Report:
    [ended] = [e for e in events(core) if isinstance(e, CallEnded)]
    return ended.report


def full_report(*, webrtc: bool = False) -> Report:
    core = started_core(OPUS if webrtc else None)
    for chunk in range(1, 51):
        core.receive_twilio(media(chunk), chunk * 0.020)
    core.record_loop_lag(LAG_COUNTS, 1.0)
    if webrtc:
        core.record_rtp({"packets_sent": 200, "remote_packets_lost": 3, "rtt_ms": 42.0}, 1.05)
    core.receive_twilio(STOP, 1.1)
    return _ended(core)


def fallback(monkeypatch: pytest.MonkeyPatch) -> Report:
    def broken(**_: Any) -> Report:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(call_module, "build_report", broken)
    core = started_core()
    core.receive_twilio(media(1), 0.02)
    core.receive_twilio(STOP, 0.1)
    return _ended(core)


def assert_declared(doc: StoredReport) -> None:
    keys = set(doc)
    assert keys >= REQUIRED, f"missing: {REQUIRED - keys}"
    assert keys <= REQUIRED | OPTIONAL, f"undeclared: {keys - REQUIRED - OPTIONAL}"


def test_a_full_reports_json_has_the_declared_keys_and_nested_sections() -> None:
    doc = full_report().to_json()
    assert_declared(doc)
    assert set(doc) - REQUIRED == {"report_version", "codec_chain", "playback", "rtt_ms", "ai_turn_ms",
                                   "bridge_host"}
    assert doc["report_version"] == 2 and doc["mos"] is not None
    for key, shape in (("codec_chain", CodecChains), ("playback", PlaybackJson), ("rtt_ms", RttJson),
                       ("ai_turn_ms", AiTurnJson), ("bridge_host", BridgeHostJson)):
        assert set(doc[key]) == shape.__required_keys__, key  # type: ignore[literal-required]
    assert doc["bridge_host"]["loop_lag"]["saturated"] is True


def test_a_webrtc_reports_json_adds_the_ai_leg() -> None:
    doc = full_report(webrtc=True).to_json()
    assert_declared(doc)
    assert set(doc["ai_leg"]) == AiLegJson.__required_keys__


def test_a_fallback_report_is_the_same_type_with_the_declared_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    report = fallback(monkeypatch)
    assert isinstance(report, Report) and report.scored is None
    doc = report.to_json()
    assert_declared(doc)
    assert set(doc) - REQUIRED == {"report_version", "error"}
    assert (doc["mos"], doc["inbound"], doc["intervals"]) == (None, {}, [])
    assert "ZeroDivisionError" in doc["error"]


def test_every_declared_key_is_written_by_some_report(monkeypatch: pytest.MonkeyPatch) -> None:
    stamped = "2026-05-01T10:00:00.000Z", "2026-05-01T10:00:01.100Z"
    written = set(full_report(webrtc=True).stamped(*stamped).to_json()) | set(fallback(monkeypatch).to_json())
    assert written == REQUIRED | OPTIONAL


def test_wall_clock_stamps_come_as_a_new_record() -> None:
    report = full_report()
    stamped = report.stamped("2026-05-01T10:00:00.000Z", "2026-05-01T10:00:01.100Z")
    assert (report.started_at, report.ended_at) == (None, None)
    assert "started_at" not in report.to_json()
    doc = stamped.to_json()
    assert (doc["started_at"], doc["ended_at"]) == ("2026-05-01T10:00:00.000Z", "2026-05-01T10:00:01.100Z")
    assert {k: v for k, v in doc.items() if k not in ("started_at", "ended_at")} == report.to_json()


def test_a_note_in_assumptions_comes_as_a_new_record() -> None:
    report = full_report()
    noted = report.with_assumption("replay", "metrics only")
    assert "replay" not in report.to_json()["assumptions"]
    assert noted.to_json()["assumptions"] == {**report.to_json()["assumptions"], "replay": "metrics only"}


def test_a_version_1_report_reads_back_through_the_store_as_written() -> None:
    # A report stored before report_version 2: no version, no jitter_max_ms in either direction.
    doc = full_report().stamped("2026-05-01T10:00:00.000Z", "2026-05-01T10:00:01.100Z").to_json()
    del doc["report_version"]
    for side in (doc["inbound"], doc["outbound"]):
        del side["jitter_max_ms"]
    store = open_store("sqlite:///:memory:")
    try:
        store.write(doc)
        assert store.get("CA1") == doc
        [row] = store.list()
        assert (row["call_sid"], row["mos"], row["jitter_ms"]) == ("CA1", doc["mos"], doc["inbound"]["jitter_ms"])
    finally:
        store.close()
