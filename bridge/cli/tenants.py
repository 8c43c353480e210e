"""``mosbridge tenants`` and ``mosbridge alerts``: tenant plans and tokens, and the alert log.

``tenants set acme --plan growth [--rotate-token]`` records a tenant's plan (how much of its own
calls it may see through ``/api/v1/tenants/acme/quality``) and, with ``--rotate-token``, prints a
new API token for it once (only its SHA-256 is stored). The store is chosen as for ``report``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time

from bridge.cli.arg_types import positive_int
from bridge.cli.report import DATABASE_URL_ENV, DEFAULT_DATABASE_URL, with_store
from bridge.core.isotime import iso_utc
from bridge.ops.store import PLANS, ReportStore, token_hash


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    url_help = f"report store URL (default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL})"
    t = sub.add_parser("tenants", help="list tenants' plans, or set a tenant's plan and API token",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = t.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = tsub.add_parser("list", help="tenants with a plan on record")
    ls.add_argument("--json", action="store_true", help="print a JSON array")
    ls.add_argument("--database-url", metavar="URL", default=None, help=url_help)
    ls.set_defaults(run=run_list, parser=ls)
    st = tsub.add_parser("set", help="set a tenant's plan (and optionally a new API token)")
    st.add_argument("tenant", metavar="TENANT")
    st.add_argument("--plan", choices=PLANS, required=True,
                    help="starter: good/fair/poor labels; growth: weekly aggregate; scale: per-call reports")
    st.add_argument("--rotate-token", action="store_true", help="issue a new API token for the tenant, printed once")
    st.add_argument("--database-url", metavar="URL", default=None, help=url_help)
    st.set_defaults(run=run_set, parser=st)

    a = sub.add_parser("alerts", help="alerts that fired, newest first")
    a.add_argument("--tenant", default=None, help="only this tenant's alerts")
    a.add_argument("--state", choices=("firing", "resolved"), default=None, help="only alerts in this state")
    a.add_argument("--limit", type=positive_int, default=50, help="at most N alerts (default 50)")
    a.add_argument("--json", action="store_true", help="print a JSON array")
    a.add_argument("--database-url", metavar="URL", default=None, help=url_help)
    a.set_defaults(run=run_alerts, parser=a)


def run_list(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        rows = [{"tenant": r.tenant, "plan": r.plan, "has_token": r.token_sha256 is not None,
                 "updated_at": r.updated_at} for r in store.tenants()]
        if args.json:
            print(json.dumps(rows))
        else:
            print("\n".join(f"{r['tenant']:<24} {r['plan']:<8} {'token' if r['has_token'] else '-':<6} "
                            f"{r['updated_at']}" for r in rows) or "no tenants with a plan on record")
        return 0
    return with_store(args, body)


def run_set(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        token = secrets.token_urlsafe(32) if args.rotate_token else None
        record = store.set_tenant(args.tenant, args.plan, token_hash(token) if token else None, iso_utc(time.time()))
        print(f"tenant {record.tenant}: plan {record.plan}")
        if token is not None:
            print(f"API token (shown once): {token}")
        return 0
    return with_store(args, body, create=True)


def run_alerts(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        rows = [a.to_dict() for a in store.alerts(args.tenant, args.state, args.limit)]
        if args.json:
            print(json.dumps(rows))
            return 0
        for r in rows:
            resolved = f"resolved {r['resolved_at']} (MOS {r['mos_at_resolve']:.2f})" if r["resolved_at"] else "FIRING"
            print(f"{r['fired_at']}  {r['tenant']:<20} {r['rule']}  MOS {r['mos_at_fire']:.2f} "
                  f"over {r['calls']} calls  {resolved}")
        if not rows:
            print("no alerts")
        return 0
    return with_store(args, body)
