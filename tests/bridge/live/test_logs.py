"""Log lines a peer cannot forge: every message escaped after formatting, tracebacks kept."""

from __future__ import annotations

import io
import logging

from bridge.live.logs import EscapingFormatter, configure_logging, escape


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
