"""Log lines a peer cannot forge: text escaped after formatting, tracebacks kept; JSON lines that
parse, name their call, and hold a hostile value on one line."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.live.logs import EscapingFormatter, JsonFormatter, bind_call, configure_logging, escape


def test_escape_keeps_everything_on_one_line() -> None:
    assert escape("CA1\r\nINFO mosbridge forged\x00\x1b[31m\t") == "CA1\\r\\nINFO mosbridge forged\\x00\\x1b[31m\\t"
    assert escape("plain ü ✓") == "plain ü ✓"


def test_a_peer_supplied_call_sid_cannot_forge_a_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("mosbridge.test-forging")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("call started %s tenant=%s", "CA1\nERROR mosbridge.report {\"mos\": 5}", "t\r\n")
        try:
            raise ValueError("ours")
        except ValueError:
            logger.exception("internal error")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == ('WARNING mosbridge.test-forging call started CA1\\nERROR mosbridge.report {"mos": 5} '
                        'tenant=t\\r\\n')
    assert not any(line.startswith("ERROR mosbridge.report") for line in lines)
    assert lines[1] == "ERROR mosbridge.test-forging internal error"
    assert lines[2].startswith("Traceback") and lines[-1] == "ValueError: ours"  # our traceback keeps its lines


def test_configure_logging_installs_the_escaping_formatter() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers = [logging.StreamHandler(io.StringIO())]
    try:
        configure_logging("info")
        assert all(isinstance(h.formatter, EscapingFormatter) for h in root.handlers)
    finally:
        root.handlers = saved


def test_configure_logging_json_installs_the_json_formatter() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers = [logging.StreamHandler(io.StringIO())]
    try:
        configure_logging("info", "json")
        assert all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    finally:
        root.handlers = saved


HOSTILE = 'CA1\r\n{"level": "ERROR", "logger": "mosbridge.report"}\x00\x1b[31m\u2028\u0085"\\ ü'


@dataclass
class Tags:
    tenant: str | None


@dataclass
class Call:
    call_sid: str = ""
    stream_sid: str = ""
    tags: Tags = field(default_factory=lambda: Tags(None))


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines to a string, as ``--log-format json`` sets up the root handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mosbridge.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    assert text.endswith("\n") and text.isascii()
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_a_json_line_has_time_level_logger_and_message(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    logger.warning("frames %d late", 3)
    [line] = lines_of(stream)
    assert line == {"time": line["time"], "level": "WARNING", "logger": "mosbridge.test-json",
                    "message": "frames 3 late"}
    when = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
    assert line["time"].endswith("Z") and when.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - when).total_seconds()) < 60


def test_json_lines_name_the_bound_call_in_every_task_it_starts(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    call = Call()

    async def driver() -> None:
        bind_call(call)  # before start: the ids are not known yet
        logger.info("upgraded")

        async def ai_task() -> None:
            await started.wait()
            logger.info("ai connected")

        started = asyncio.Event()
        task = asyncio.create_task(ai_task())
        call.call_sid, call.stream_sid, call.tags = "CA42", "MZ42", Tags("acme")
        started.set()
        await task
        logger.info("ended")

    contextvars.Context().run(asyncio.run, driver())
    logger.info("not a call's")
    upgraded, ai, ended, other = lines_of(stream)
    assert "call_sid" not in upgraded and "tenant" not in upgraded
    for line in (ai, ended):
        assert (line["call_sid"], line["stream_sid"], line["tenant"]) == ("CA42", "MZ42", "acme")
    assert not {"call_sid", "stream_sid", "tenant"} & set(other)


def test_extra_names_a_call_and_wins_over_the_bound_one(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log

    def log() -> None:
        bind_call(Call("CA-bound", "MZ-bound", Tags(None)))
        logger.info("from elsewhere", extra={"call_sid": "CA-extra", "tenant": "beta"})

    contextvars.Context().run(log)
    [line] = lines_of(stream)
    assert (line["call_sid"], line["stream_sid"], line["tenant"]) == ("CA-extra", "MZ-bound", "beta")


def test_hostile_values_stay_on_one_json_line_and_come_back_exactly(
        json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log

    def log() -> None:
        bind_call(Call(HOSTILE, HOSTILE, Tags(HOSTILE)))
        logger.warning("call started %s tenant=%s", HOSTILE, HOSTILE)
        try:
            raise ValueError(HOSTILE)
        except ValueError:
            logger.exception("internal error")

    contextvars.Context().run(log)
    text = stream.getvalue()
    assert len(text.splitlines()) == 2  # str.splitlines breaks on U+2028 and NEL too: they are escaped
    started, error = lines_of(stream)
    assert started["message"] == f"call started {HOSTILE} tenant={HOSTILE}"
    assert started["call_sid"] == started["stream_sid"] == started["tenant"] == HOSTILE
    assert started["level"] == "WARNING" and started["logger"] == "mosbridge.test-json"
    assert error["message"] == "internal error" and error["level"] == "ERROR"
    assert error["exc"].startswith("Traceback") and error["exc"].endswith(f"ValueError: {HOSTILE}")


def test_the_report_line_is_an_object_under_report() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    report_log = logging.getLogger("mosbridge.report")
    saved = report_log.propagate, report_log.level
    report_log.addHandler(handler)
    report_log.propagate = False
    report_log.setLevel(logging.INFO)
    report = {"call_sid": HOSTILE, "mos": 4.31, "outbound": {"loss_pct": 0.0}, "tags": {"tenant": "acme"}}
    try:
        report_log.info(json.dumps(report, sort_keys=True))  # as the server logs it
        report_log.info("not JSON {")
    finally:
        report_log.removeHandler(handler)
        report_log.propagate, report_log.level = saved
    line, odd = lines_of(stream)
    assert line["logger"] == "mosbridge.report" and line["message"] == "call report"
    assert line["report"] == report
    assert odd["message"] == "not JSON {" and "report" not in odd
