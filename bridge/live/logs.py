"""Logging of the live bridge: peer-supplied values escaped, malformed HTTP as one warning line.

A CallSid, tenant or header a peer sends can hold CR/LF; written raw, it forges whole log lines.
Every message is escaped (control characters as ``\\n``, ``\\r``, ``\\xNN``) after formatting, so
what a peer sent cannot end a line; tracebacks, which are ours, keep their lines. aiohttp logs a
request it cannot parse as an ERROR with a traceback, which lets anyone flood the log cheaply:
those become one WARNING line each.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def escape(text: str) -> str:
    """``text`` with every control character written as an escape: it stays on one line."""
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class MalformedRequestFilter(logging.Filter):
    """On ``aiohttp.server``: a request aiohttp could not parse (4xx) is one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "malformed HTTP request from %s: %s %s", (remote, exc.code, exc.message)
            record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_requests() -> None:
    """Install :class:`MalformedRequestFilter` on aiohttp's server logger, once."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


def configure_logging(level: str) -> None:
    """The root handler with the escaping formatter; aiohttp's parse errors as warnings."""
    logging.basicConfig(level=level.upper())
    formatter = EscapingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    quiet_malformed_requests()
