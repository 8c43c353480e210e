"""``mosbridge report`` and ``mosbridge calls``: read stored call reports back.

``report CALL_SID`` prints one call's report (``--json``: exactly the stored dict); ``calls``
lists recent calls, newest first. The store is ``--database-url``, else the environment's
``MOSBRIDGE_DATABASE_URL``, else ``sqlite:///mosbridge.db`` in the working directory. Reading
never creates a database: a missing file is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.cli.arg_types import positive_int
from bridge.core.report_json import StoredReport
from bridge.ops.store import MEMORY, ReportStore, StoreError, open_store, sqlite_path

DATABASE_URL_ENV = "MOSBRIDGE_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///mosbridge.db"


def database_url(given: str | None) -> str:
    """The store URL to use: the option, then the environment, then the default."""
    if given:
        return given
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL




def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    url_help = (f"report store URL (default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL}); "
                "sqlite:///relative.db, sqlite:////absolute.db, a file path or postgresql://user@host/db")
    p = sub.add_parser("report", help="print the stored quality report of one call",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("call_sid", metavar="CALL_SID", help="the Twilio CallSid")
    p.add_argument("--json", action="store_true", help="print the stored report as one JSON object")
    p.add_argument("--database-url", metavar="URL", default=None, help=url_help)
    p.set_defaults(run=run_report, parser=p)

    c = sub.add_parser("calls", help="list recent calls with their MOS, newest first",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--tenant", default=None, help="only this tenant's calls")
    c.add_argument("--limit", type=positive_int, default=50, help="at most N calls (default 50)")
    c.add_argument("--json", action="store_true", help="print a JSON array of summary rows")
    c.add_argument("--database-url", metavar="URL", default=None, help=url_help)
    c.set_defaults(run=run_calls, parser=c)


def with_store(args: argparse.Namespace, body: Callable[[ReportStore], int], create: bool = False) -> int:
    """Run ``body`` on the store ``--database-url`` names; exit 1 with one line if it cannot be
    opened. A missing SQLite file is an error unless ``create``."""
    url = database_url(args.database_url)
    try:
        path = sqlite_path(url)
    except StoreError as e:
        args.parser.error(str(e))
    if not create and path is not None and path != MEMORY and not Path(path).is_file():
        print(f"mosbridge: no report database at {path} (set --database-url or ${DATABASE_URL_ENV})",
              file=sys.stderr)
        return 1
    try:
        store = open_store(url)
    except StoreError as e:
        print(f"mosbridge: {e}", file=sys.stderr)
        return 1
    try:
        return body(store)
    finally:
        store.close()


def run_report(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        report = store.get(args.call_sid)
        if report is None:
            print(f"mosbridge: no report for call {args.call_sid}", file=sys.stderr)
            return 1
        print(json.dumps(report) if args.json else format_report(report))
        return 0
    return with_store(args, body)


def run_calls(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        rows = store.list(tenant=args.tenant, limit=args.limit)
        print(json.dumps(rows) if args.json else format_calls(rows))
        return 0
    return with_store(args, body)


def _num(value: Any, fmt: str, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return f"{value:{fmt}}{unit}"
        except ValueError:  # e.g. a float where an int format was expected
            return f"{value}{unit}"
    return str(value)


def _latency(bl: Any) -> str:
    if not isinstance(bl, dict):
        return "-"
    return "  ".join(f"{k} {_num(bl.get(k), '.1f', ' ms')}" for k in ("p50", "p99", "max"))


def format_report(report: StoredReport) -> str:
    """A readable summary of one stored report (the JSON has everything)."""
    lines = [
        f"call       {report.get('call_sid')}   tenant {report.get('tenant') or '-'}",
        f"MOS        {_num(report.get('mos'), '.2f')}  ({report.get('band', '-')})   "
        f"R {_num(report.get('r'), '.1f')}",
        f"dominant   {report.get('dominant_impairment', '-')}",
        f"duration   {_num(report.get('duration_s'), '.1f', ' s')}",
    ]
    for key, label in (("started_at", "started"), ("ended_at", "ended"), ("end_reason", "end reason"),
                       ("codec_chain", "codecs")):
        value = report.get(key)
        if value is not None:
            lines.append(f"{label:<10} {value if isinstance(value, str) else json.dumps(value)}")
    for side in ("inbound", "outbound"):
        d = report.get(side)
        if not isinstance(d, dict):
            continue
        lines += [
            f"{side}{'  (caller -> AI)' if side == 'inbound' else '  (AI -> caller)'}",
            f"  MOS {_num(d.get('mos'), '.2f')}  R {_num(d.get('r'), '.1f')}  "
            f"dominant {d.get('dominant_impairment', '-')}",
            f"  jitter {_num(d.get('jitter_ms'), '.1f', ' ms')} (max {_num(d.get('jitter_max_ms'), '.1f', ' ms')})  "
            f"loss {_num(d.get('loss_pct'), '.2f', ' %')}  "
            f"frames {_num(d.get('frames'), 'd')}  gaps {_num(d.get('gaps'), 'd')}  "
            f"delay {_num(d.get('delay_ms'), '.0f', ' ms')}",
            f"  bridge latency  {_latency(d.get('bridge_latency_ms'))}",
        ]
    tags = report.get("tags") or {}
    lines.append("tags       " + ("  ".join(f"{k}={v}" for k, v in sorted(tags.items())) if tags else "-"))
    return "\n".join(lines)


_CALL_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    # header, row key, value format, alignment
    ("started_at", "started_at", "", "<"),
    ("call_sid", "call_sid", "", "<"),
    ("tenant", "tenant", "", "<"),
    ("mos", "mos", ".2f", ">"),
    ("band", "band", "", "<"),
    ("dominant", "dominant_impairment", "", "<"),
    ("loss%", "packet_loss_pct", ".2f", ">"),
    ("jitter_ms", "jitter_ms", ".1f", ">"),
)


def format_calls(rows: list[dict[str, Any]]) -> str:
    """The calls table, columns sized to their content."""
    if not rows:
        return "no calls"
    cells = [[_num(r.get(key), fmt) for _, key, fmt, _ in _CALL_COLUMNS] for r in rows]
    heads = [h for h, _, _, _ in _CALL_COLUMNS]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    aligns = [a for _, _, _, a in _CALL_COLUMNS]

    def line(values: list[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, aligns, widths, strict=True)).rstrip()

    return "\n".join([line(heads), *(line(c) for c in cells)])
