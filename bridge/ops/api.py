"""The JSON API under ``/api/v1``: calls, a call's report, tenant summaries, plans, alerts.

Admin access: ``Authorization: Bearer <MOSBRIDGE_ADMIN_TOKEN>`` or the dashboard's
``mosbridge_token`` cookie; with no admin token configured, loopback clients only. A tenant's own
token (set with ``PUT /api/v1/tenants/{tenant}`` and ``rotate_token``, stored as a SHA-256) opens
that tenant's plan-level view (``/quality``) and, on the scale plan, its calls' reports.
Every database call runs on the store thread; an unreachable database answers 503.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from bridge.core.isotime import iso_utc
from bridge.core.tags import UNTAGGED
from bridge.ops import analytics
from bridge.ops.store import PLANS, Plan, ReportStore, StoreError, StoreUnavailable, token_hash
from bridge.ops.store_thread import StoreThread

log = logging.getLogger("mosbridge.api")

COOKIE = "mosbridge_token"
AS_TENANT = web.RequestKey("as_tenant", bool)  # the request came with a tenant's token, not the admin's
MAX_LIMIT = 1000
RETRY_AFTER_S = 5  # a store outage: when a client (or a dashboard) should ask again
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE)


def authorized(request: web.Request, admin_token: str | None) -> bool:
    """Admin access: the right token (header or cookie), or, with none configured, loopback."""
    if not admin_token:
        return _is_loopback(request.remote)
    given = presented_token(request)
    return given is not None and hmac.compare_digest(given.encode(), admin_token.encode())


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"error": "{name} must be an integer"}}',
                                 content_type="application/json") from None
    return max(lo, min(hi, value))


class Api:
    def __init__(self, db: StoreThread, admin_token: str | None, default_plan: Plan,
                 clock: Callable[[], float]) -> None:
        self.db = db
        self.admin_token = admin_token
        self.default_plan = default_plan
        self.clock = clock

    def routes(self) -> list[web.RouteDef]:
        admin = self._admin
        return [
            web.get("/api/v1/tenants", admin(self.tenants)),
            web.get("/api/v1/tenants/{tenant}", admin(self.tenant)),
            web.put("/api/v1/tenants/{tenant}", admin(self.set_tenant)),
            web.get("/api/v1/tenants/{tenant}/quality", self._tenant_or_admin(self.tenant_quality)),
            web.get("/api/v1/tenants/{tenant}/calls/{call_sid}", self._tenant_or_admin(self.tenant_call)),
            web.get("/api/v1/calls", admin(self.calls)),
            web.get("/api/v1/calls/{call_sid}", admin(self.call)),
            web.get("/api/v1/alerts", admin(self.alerts)),
        ]

    # -- access --------------------------------------------------------------------------

    def _admin(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not authorized(request, self.admin_token):
                return _error(401, "admin token required (Authorization: Bearer ...)")
            return await self._guard_db(handler, request)
        return guarded

    def _tenant_or_admin(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not authorized(request, self.admin_token):
                given = presented_token(request)
                tenant = request.match_info["tenant"]
                if given is None or not await self._guard_tenant(tenant, given):
                    return _error(401, "this tenant's token or the admin token required")
                request[AS_TENANT] = True
            return await self._guard_db(handler, request)
        return guarded

    async def _guard_tenant(self, tenant: str, given: str) -> bool:
        try:
            record = await self.db.run(ReportStore.tenant, tenant)
        except Exception as e:
            log.error("tenant token check failed: %s", e)
            return False
        return (record is not None and record.token_sha256 is not None
                and hmac.compare_digest(record.token_sha256, token_hash(given)))

    async def _guard_db(self, handler: Handler, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except StoreUnavailable as e:
            return self._unavailable(request, e)
        except StoreError as e:
            return _error(400, str(e))
        except Exception as e:
            return self._unavailable(request, e)

    @staticmethod
    def _unavailable(request: web.Request, e: Exception) -> web.Response:
        log.error("%s %s: report store unavailable: %s", request.method, request.path, e)
        response = _error(503, f"report store unavailable: {e}")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    # -- handlers -------------------------------------------------------------------------

    async def tenants(self, request: web.Request) -> web.Response:
        now = self.clock()
        rows = await self.db.run(analytics.tenant_summaries, now, self.default_plan)
        return web.json_response({"now": iso_utc(now), "tenants": rows})

    async def tenant(self, request: web.Request) -> web.Response:
        span = _int(request, "span_s", 86400, 60, 31 * 86400)
        bucket = _int(request, "bucket_s", 300, 10, 86400)
        detail = await self.db.run(analytics.tenant_detail, request.match_info["tenant"], self.clock(),
                                   self.default_plan, float(span), float(bucket))
        if detail is None:
            return _error(404, f"no tenant {request.match_info['tenant']!r}")
        return web.json_response(detail)

    async def set_tenant(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body must be JSON: {\"plan\": \"starter|growth|scale\", \"rotate_token\": false}")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        current = await self.db.run(ReportStore.tenant, tenant)
        plan = body.get("plan", current.plan if current else self.default_plan)
        if plan not in PLANS:
            return _error(400, f"plan must be one of {', '.join(PLANS)}")
        token = secrets.token_urlsafe(32) if body.get("rotate_token") else None
        record = await self.db.run(ReportStore.set_tenant, tenant, cast(Plan, plan),
                                   token_hash(token) if token else None, iso_utc(self.clock()))
        out: dict[str, Any] = {"tenant": record.tenant, "plan": record.plan, "updated_at": record.updated_at,
                               "has_token": record.token_sha256 is not None}
        if token is not None:
            out["token"] = token  # shown once; only its hash is stored
        log.info("tenant %s set to plan %s%s", tenant, record.plan, " with a new token" if token else "")
        return web.json_response(out)

    async def tenant_quality(self, request: web.Request) -> web.Response:
        view = await self.db.run(analytics.tenant_view, request.match_info["tenant"], self.clock(), self.default_plan,
                                 _int(request, "limit", 50, 1, MAX_LIMIT))
        return web.json_response(view)

    async def tenant_call(self, request: web.Request) -> web.Response:
        tenant, call_sid = request.match_info["tenant"], request.match_info["call_sid"]
        if request.get(AS_TENANT):
            plan = await self.db.run(analytics.plan_of, tenant, self.default_plan)
            if plan != "scale":
                return _error(403, f"per-call reports are on the scale plan; {tenant} is on {plan}")
        report = await self.db.run(ReportStore.get, call_sid)
        if report is None or (report.get("tenant") or UNTAGGED) != tenant:
            return _error(404, f"no call {call_sid!r} for tenant {tenant!r}")
        return web.json_response(report)

    async def calls(self, request: web.Request) -> web.Response:
        rows = await self.db.run(ReportStore.list, request.query.get("tenant"),
                                 _int(request, "limit", 50, 1, MAX_LIMIT))
        return web.json_response({"calls": rows})

    async def call(self, request: web.Request) -> web.Response:
        report = await self.db.run(ReportStore.get, request.match_info["call_sid"])
        if report is None:
            return _error(404, f"no call {request.match_info['call_sid']!r}")
        return web.json_response(report)

    async def alerts(self, request: web.Request) -> web.Response:
        state = request.query.get("state")
        if state not in (None, "firing", "resolved"):
            return _error(400, "state must be firing or resolved")
        rows = await self.db.run(ReportStore.alerts, request.query.get("tenant"), state,
                                 _int(request, "limit", 50, 1, MAX_LIMIT))
        return web.json_response({"alerts": [a.to_dict() for a in rows]})
