"""The web dashboard: static pages under ``/dashboard`` that read the JSON API (``/api/v1``).

Routes (see :func:`add_dashboard_routes`):

- ``GET /dashboard`` (and ``/dashboard/``): the single-page app (``bridge/ops/web/index.html``); hash
  routes ``#/``, ``#/tenant/<name>`` and ``#/call/<sid>`` are handled in the browser.
- ``GET /dashboard/static/<file>``: its assets (``bridge/ops/web/``, uPlot vendored under
  ``vendor/uplot/``). No data in them, so no auth: the login page uses the stylesheet.
- ``GET /dashboard/login``, ``POST /dashboard/login`` (form field ``token``) and
  ``GET /dashboard/logout``: the admin-token cookie ``mosbridge_token``.

Auth is the API's rule (:func:`bridge.ops.api.authorized`): ``Authorization: Bearer <token>`` or the
cookie ``mosbridge_token``; with no admin token configured, loopback clients only.
"""

from __future__ import annotations

import hmac
import html
from pathlib import Path

from aiohttp import web

from bridge.ops.api import COOKIE, authorized

__all__ = ["COOKIE", "WEB_DIR", "add_dashboard_routes", "authorized"]

WEB_DIR = Path(__file__).resolve().parent / "web"
DASHBOARD = "/dashboard"
LOGIN = "/dashboard/login"
LOGOUT = "/dashboard/logout"

# Everything the pages load comes from this origin; uPlot sets element styles from script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NO_STORE = {"Cache-Control": "no-store"}


def token_matches(supplied: str | None, token: str) -> bool:
    """Constant-time comparison of a supplied token with the configured one."""
    return supplied is not None and hmac.compare_digest(supplied.encode(), token.encode())


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower() == "https"


def _page(name: str, **values: str) -> str:
    text = (WEB_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, **NO_STORE})


class _Dashboard:
    def __init__(self, admin_token: str | None) -> None:
        self.token = admin_token or None

    def _denied(self) -> web.StreamResponse:
        if self.token is None:
            return web.Response(status=403, text="the dashboard answers loopback clients only; set "
                                "MOSBRIDGE_ADMIN_TOKEN to use it from elsewhere\n",
                                headers={**SECURITY_HEADERS, **NO_STORE})
        raise web.HTTPFound(LOGIN, headers=NO_STORE)

    async def index(self, request: web.Request) -> web.StreamResponse:
        if not authorized(request, self.token):
            return self._denied()
        return _html(_page("index.html", AUTH="token" if self.token else "loopback"))

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["path"]
        root = WEB_DIR.resolve()
        path = (root / name).resolve()
        if (not path.is_relative_to(root) or not path.is_file() or path.suffix == ".html"
                or any(part.startswith(".") for part in path.relative_to(root).parts)):
            raise web.HTTPNotFound()
        # Revalidate every time (Last-Modified / If-Modified-Since): an upgraded bridge never
        # serves yesterday's app.js from a browser cache.
        return web.FileResponse(path, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    def _login_form(self, error: str = "", status: int = 200) -> web.Response:
        err = f'<p class="login-error" role="alert">{html.escape(error)}</p>' if error else ""
        return _html(_page("login.html", ERROR=err), status=status)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if self.token is None or authorized(request, self.token):
            raise web.HTTPFound(DASHBOARD, headers=NO_STORE)
        return self._login_form()

    async def login(self, request: web.Request) -> web.StreamResponse:
        if self.token is None:
            raise web.HTTPFound(DASHBOARD, headers=NO_STORE)
        form = await request.post()
        supplied = form.get("token")
        if not isinstance(supplied, str) or not token_matches(supplied.strip(), self.token):
            return self._login_form("That token is not the bridge's admin token.", status=401)
        response = web.HTTPFound(DASHBOARD, headers=NO_STORE)
        response.set_cookie(COOKIE, supplied.strip(), path="/", httponly=True, samesite="Strict",
                            secure=_secure(request))
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPFound(LOGIN if self.token else DASHBOARD, headers=NO_STORE)
        response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure(request))
        raise response


def add_dashboard_routes(app: web.Application, admin_token: str | None) -> None:
    """Serve the dashboard under ``/dashboard`` on ``app``; ``admin_token`` is the configured
    ``Settings.admin_token`` (its secret value), None for loopback-only access."""
    d = _Dashboard(admin_token)
    app.add_routes([
        web.get(DASHBOARD, d.index),
        web.get(DASHBOARD + "/", d.index),
        web.get(LOGIN, d.login_form),
        web.post(LOGIN, d.login),
        web.get(LOGOUT, d.logout),
        web.get(DASHBOARD + "/static/{path:.+}", d.static),
    ])
