"""Logging of the live bridge: text or JSON lines a peer cannot forge, each naming its call.

A CallSid, tenant or header a peer sends can hold CR/LF; written raw, it forges whole log lines.
In text (the default) every message is escaped (control characters as ``\\n``, ``\\r``, ``\\xNN``)
after formatting, so what a peer sent cannot end a line; tracebacks, which are ours, keep their
lines. In JSON every line is one object (``JsonFormatter``), JSON's own escaping keeps it one line.
The call driver binds its call (``bind_call``) so that every line logged by the call's tasks carries
its ``call_sid``, ``stream_sid`` and ``tenant``. aiohttp logs a request it cannot parse as an ERROR
with a traceback, which lets anyone flood the log cheaply: those become one WARNING line each.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any, Literal, Protocol

from aiohttp.http_exceptions import HttpProcessingError

from bridge.core.isotime import iso_utc

LogFormat = Literal["text", "json"]
REPORT_LOGGER = "mosbridge.report"
CALL_FIELDS = ("call_sid", "stream_sid", "tenant")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

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


class _Tenanted(Protocol):
    @property
    def tenant(self) -> str | None: ...


class CallIdentity(Protocol):
    """What a log line names a call by; the call core has these, filled in once ``start`` came."""

    @property
    def call_sid(self) -> str: ...
    @property
    def stream_sid(self) -> str: ...
    @property
    def tags(self) -> _Tenanted: ...


# Holds the call itself, read when a line is written: the ids are known only after ``start``, and
# tasks the call started before then share this same object through their copied context.
_current_call: ContextVar[CallIdentity | None] = ContextVar("mosbridge_call", default=None)


def bind_call(call: CallIdentity) -> None:
    """Lines logged from now on by this task, and the tasks it starts after this, name ``call``."""
    _current_call.set(call)


def call_fields(record: logging.LogRecord) -> dict[str, str]:
    """``call_sid``, ``stream_sid`` and ``tenant`` where known: passed with ``extra=``, else the bound call's."""
    call = _current_call.get()
    known = {"call_sid": call.call_sid, "stream_sid": call.stream_sid, "tenant": call.tags.tenant} if call else {}
    out: dict[str, str] = {}
    for name in CALL_FIELDS:
        value = getattr(record, name, None) or known.get(name)
        if value:
            out[name] = str(value)
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO-8601 UTC), level, logger, message, the call's ids, and
    ``exc`` with a traceback. The report line carries the report as an object under ``report``.

    Non-ASCII is written as ``\\uXXXX`` too: U+2028 or NEL end a line for some readers."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": iso_utc(record.created), "level": record.levelname, "logger": record.name,
                               "message": record.getMessage(), **call_fields(record)}
        if record.name == REPORT_LOGGER:
            try:
                out["report"] = json.loads(out["message"])
                out["message"] = "call report"
            except ValueError:
                pass  # not a report after all: it stays the message
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=True, default=str)


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """The root handler with the escaping text formatter or the JSON one; aiohttp's parse errors as warnings."""
    logging.basicConfig(level=level.upper())
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else EscapingFormatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    quiet_malformed_requests()
