"""The dashboard in a real headless Chromium: overview, tenant and call pages, charts that
actually draw, the login flow, and no console errors.

The bridge under test is the real one (``bridge.live.server.Bridge``: its JSON API under ``/api/v1``
and the dashboard) over a SQLite store holding real reports: the sample captures in
``tests/data`` (plus one simulated 60 s call) replayed through ``bridge.replay.run``, given tenants,
tags and times over the last 24 hours. Every assertion compares the page with what the API
answered.

Screenshots go to pytest's tmp dir and to ``/tmp/mosbridge-dashboard-*.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import random
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bridge.core.isotime import to_iso
from bridge.live.server import Bridge
from bridge.live.settings import Settings
from bridge.ops.dashboard import COOKIE, add_dashboard_routes, authorized
from bridge.ops.store import open_store
from bridge.protocols.capture import parse_capture, read_capture
from bridge.replay.run import replay
from bridge.stand_ins.simulate import SimParams, simulate
from tests.bridge.browser import (
    WebDriver,
    canvas_color_pixels,
    console_errors,
    full_page_png,
    hex_rgb,
    start_chromium,
)
from tests.reports import loose, stored

DATA = Path(__file__).resolve().parents[2] / "data"
TOKEN = "test-admin-token-0123456789abcdef"
PLANS: dict[str, Literal["starter", "growth", "scale"]] = {
    "acme-health": "scale", "globex": "growth", "initech": "starter"}
BANDS = ("excellent", "good", "fair", "poor")
Json = dict[str, Any]


# ------------------------------------------------------------------------------ the data


def sample_reports() -> dict[str, Json]:
    """Real reports: the shipped sample captures and one simulated 60 s call, replayed."""
    out = {p.stem: loose(replay(read_capture(p)).report.to_json()) for p in sorted(DATA.glob("*.jsonl"))}
    sim = simulate(SimParams(seconds=60, delay_ms=40, loss_pct=0.5, jitter_ms=5, speech=True), random.Random(7))
    out["long_mixed"] = loose(replay(parse_capture(sim.text().splitlines())).report.to_json())
    heavy = simulate(SimParams(seconds=20, delay_ms=40, loss_pct=15, speech=True), random.Random(8))
    out["heavy_loss"] = loose(replay(parse_capture(heavy.text().splitlines())).report.to_json())
    # the same lossy call on a bridge whose event loop lagged: a host_lag line as serve records it
    # (1000 ticks, 30 over 20 ms, p99 44 ms), two thirds of the way through
    lines = (DATA / "random_loss_2pct.jsonl").read_text().splitlines()
    at = 2 * len(lines) // 3
    t = json.loads(lines[at])["t"]
    lag = json.dumps({"t": t, "dir": "host_lag", "counts": [600, 800, 950, 960, 970, 995, 1000, 1000, 1000, 1000]})
    out["random_loss_2pct_saturated"] = loose(replay(parse_capture([*lines[:at], lag, *lines[at:]])).report.to_json())
    return out


@dataclass
class Dataset:
    now: datetime
    reports: list[Json]
    alerts: list[Json] = field(default_factory=list)


def build_dataset(now: datetime) -> Dataset:
    """Three tenants: acme-health degrading now (alert firing), globex healthy, initech quiet.

    Call times stay clear of the window edges (5 min, 1 h, 24 h), so the figures do not change
    while the test runs."""
    samples = sample_reports()
    reports: list[Json] = []

    def add(tenant: str, n: int, sample: str, ended_ago_s: float, tags: dict[str, str]) -> None:
        r = copy.deepcopy(samples[sample])
        ended = now - timedelta(seconds=ended_ago_s)
        r["call_sid"] = "CA" + hashlib.sha256(f"{tenant}/{n}".encode()).hexdigest()[:32]
        r["tenant"] = tenant
        r["tags"] = dict(tags)
        r["ended_at"] = to_iso(ended)
        r["started_at"] = to_iso(ended - timedelta(seconds=r["duration_s"]))
        reports.append(r)

    healthy = ["clean", "clean", "long_mixed", "clean", "random_loss_2pct", "clean"]
    acme = {"vertical": "healthcare", "patient_id": "ps_3f9a1c"}
    for i in range(56):  # every 25 min from ~23.5 h ago to ~1.2 h ago
        add("acme-health", i, healthy[i % len(healthy)], 84_600 - i * 1500, acme)
    for k in range(6):  # pairs ending together share a chart bucket, so p10 and mean part ways there
        for m, sample in enumerate(("clean", "bursty_loss_jitter")):
            add("acme-health", 200 + 2 * k + m, sample, 10_000 + k * 9_000, acme)
    degraded = ["random_loss_2pct", "clean", "bursty_loss_jitter", "plain_twilio_log", "reorder_dup_stall",
                "heavy_loss", "heavy_loss", "long_mixed"]
    for j, (sample, ago) in enumerate(zip(degraded, (1800, 1500, 1200, 900, 600, 170, 110, 50), strict=True)):
        add("acme-health", 100 + j, sample, ago, acme)
    for i in range(30):
        add("globex", i, "clean" if i % 4 else "long_mixed", 82_000 - i * 2700, {"vertical": "retail"})
    add("globex", 99, "clean", 140, {"vertical": "retail"})
    for i, sample in enumerate(["clean", "random_loss_2pct_saturated", "bursty_loss_jitter", "clean", "long_mixed"]):
        add("initech", i, sample, 11_000 + i * 2400, {})

    def alert(id_: int, tenant: str, fired_ago_s: float, resolved_ago_s: float | None, at_fire: float,
              at_resolve: float | None, calls: int) -> Json:
        return {"id": id_, "tenant": tenant, "rule": "mean MOS < 4.0 over 5 min, for 5 min",
                "state": "firing" if resolved_ago_s is None else "resolved",
                "fired_at": to_iso(now - timedelta(seconds=fired_ago_s)),
                "resolved_at": None if resolved_ago_s is None else to_iso(now - timedelta(seconds=resolved_ago_s)),
                "mos_at_fire": at_fire, "mos_at_resolve": at_resolve, "threshold": 4.0, "calls": calls}

    alerts = [alert(7, "acme-health", 1260, None, 3.42, None, 4),
              alert(6, "initech", 12_500, 9_800, 3.71, 4.18, 3),
              alert(5, "acme-health", 40_000, 38_200, 3.88, 4.21, 5)]
    return Dataset(now, reports, alerts)


# ------------------------------------------------------------------------------ the bridge


def bridge_app(data: Dataset, admin_token: str | None, tmp: Path) -> web.Application:
    """The real bridge, ``bridge.live.server.Bridge``, over a SQLite store holding ``data``: its
    reports, its tenants' plans and its alerts (written as the alert evaluator writes them; the
    evaluator itself is off, so the figures do not move while the test looks)."""
    url = f"sqlite:///{tmp / 'dashboard.db'}"
    store = open_store(url)
    try:
        for report in data.reports:
            store.write(stored(report))
        for tenant, plan in PLANS.items():
            store.set_tenant(tenant, plan, None, to_iso(data.now))
        for a in sorted(data.alerts, key=lambda a: a["fired_at"]):
            record = store.open_alert(a["tenant"], a["rule"], a["fired_at"], a["mos_at_fire"], a["calls"],
                                      a["threshold"])
            assert record is not None
            if a["state"] == "resolved":
                store.resolve_alert(record.id, a["resolved_at"], a["mos_at_resolve"])
    finally:
        store.close()
    settings = Settings(host="127.0.0.1", port=0, database_url=url, admin_token=admin_token,
                        validate_twilio_signature=False, alerts=False)
    app = Bridge(settings, None).app
    return app


# ------------------------------------------------------------------------------ servers


class ServerThread:
    """An aiohttp app on 127.0.0.1 in a thread of its own, for the synchronous browser tests."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dashboard-server", daemon=True)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None:
            raise self._error
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Site:
    base: str
    token: str | None
    data: Dataset

    def api(self, path: str, token: str | None = None) -> Json:
        headers = {"Accept": "application/json"}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=headers), timeout=10) as resp:
            body: Json = json.loads(resp.read())
        return body


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return build_dataset(datetime.now(UTC))


@pytest.fixture(scope="module")
def sites(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Site]]:
    """Two bridges over the same reports: loopback access (no admin token) and with a token."""
    servers = {"open": ServerThread(bridge_app(dataset, None, tmp_path_factory.mktemp("open"))),
               "token": ServerThread(bridge_app(dataset, TOKEN, tmp_path_factory.mktemp("token")))}
    try:
        yield {name: Site(s.start(), TOKEN if name == "token" else None, dataset) for name, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    d = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[WebDriver, str], None]:
    out = tmp_path_factory.mktemp("screenshots")

    def save(d: WebDriver, name: str) -> None:
        png = full_page_png(d)
        (out / f"{name}.png").write_bytes(png)
        Path(f"/tmp/mosbridge-dashboard-{name}.png").write_bytes(png)

    return save


# ------------------------------------------------------------------------------ helpers


def wait(d: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 10.0) -> Any:
    return WebDriverWait(d, timeout, poll_frequency=0.05).until(condition)


def wait_view(d: WebDriver, view: str) -> None:
    wait(d, lambda d: d.execute_script(
        "const s = window.mosbridge; return !!(s && s.ready && s.route && s.route.view === arguments[0]);", view))


def text(d: WebDriver, css: str) -> str:
    return str(d.find_element(By.CSS_SELECTOR, css).text).strip()


def mos_text(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def series_rgb(d: WebDriver, name: str) -> tuple[int, int, int]:
    return hex_rgb(str(d.execute_script("return window.mosbridge.COLORS[arguments[0]];", name)))


def chart_pixels(d: WebDriver, chart: str, color: str, at_least: int) -> int:
    """Wait until the chart's canvas holds ``at_least`` pixels of the series colour; return the count."""
    rgb = series_rgb(d, color)
    selector = f"#{chart} canvas"
    with contextlib.suppress(TimeoutException):  # the count below says how far it got
        wait(d, lambda d: canvas_color_pixels(d, selector, rgb) >= at_least, timeout=5)
    return canvas_color_pixels(d, selector, rgb)


def assert_no_console_errors(d: WebDriver) -> None:
    errors = console_errors(d)
    assert not errors, errors


def assert_no_stray_null(d: WebDriver) -> None:
    """No ``null`` as a word in the page's text: a left-out card must leave nothing, not "null"."""
    page = str(d.find_element(By.TAG_NAME, "body").text)
    assert not re.search(r"\bnull\b", page), [line for line in page.splitlines() if "null" in line]


# ------------------------------------------------------------------------------ browser tests


def test_overview_lists_tenants_with_their_mos(driver: WebDriver, sites: dict[str, Site],
                                               shots: Callable[[WebDriver, str], None]) -> None:
    site = sites["open"]
    driver.get(site.base + "/dashboard#/")
    wait_view(driver, "overview")
    served = site.api("/api/v1/tenants")
    tenants = served["tenants"]
    assert {t["tenant"] for t in tenants} == set(PLANS)
    tiles = driver.find_elements(By.CSS_SELECTOR, ".tile")
    assert sorted(t.get_attribute("data-tenant") or "" for t in tiles) == sorted(t["tenant"] for t in tenants)
    for t in tenants:
        tile = f'.tile[data-tenant="{t["tenant"]}"]'
        assert text(driver, tile + " .chip") == t["plan"]
        for key, w in t["windows"].items():
            assert text(driver, f'{tile} .win[data-window="{key}"] .mos') == mos_text(w["mean"]), (t["tenant"], key)
            assert text(driver, f'{tile} .win[data-window="{key}"] .calls').replace(",", "") == str(w["calls"])
            assert text(driver, f'{tile} .win[data-window="{key}"] .p10') == mos_text(w["p10"])
        badges = driver.find_elements(By.CSS_SELECTOR, tile + " .alert-badge")
        if t["alert"] is not None and t["alert"]["state"] == "firing":
            assert len(badges) == 1 and badges[0].text.startswith("ALERT firing since")
        else:
            assert not badges
        legend = {b: text(driver, f"{tile} .tile-bands .bl-{b} b") for b in BANDS}
        assert legend == {b: str(n) for b, n in t["windows"]["24h"]["bands"].items()}
    # The band colour follows the mean: acme-health's last 5 minutes are poor in the data served.
    acme = next(t for t in tenants if t["tenant"] == "acme-health")
    assert acme["windows"]["5m"]["calls"] == 3 and acme["windows"]["5m"]["mean"] < 3.6
    assert acme["alert"] is not None and acme["alert"]["state"] == "firing"
    mos_el = driver.find_element(By.CSS_SELECTOR, '.tile[data-tenant="acme-health"] .win[data-window="5m"] .mos')
    assert "band-poor" in (mos_el.get_attribute("class") or "")
    assert mos_el.value_of_css_property("color") in ("rgba(239, 68, 68, 1)", "rgb(239, 68, 68)")
    # initech had no call in the last hour: no number, no band.
    assert text(driver, '.tile[data-tenant="initech"] .win[data-window="1h"] .mos') == "—"
    alerts = site.api("/api/v1/alerts?limit=20")["alerts"]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".alerts-table tbody tr")) == len(alerts)
    shots(driver, "overview")
    assert_no_console_errors(driver)


def test_tenant_page_shows_chart_and_calls(driver: WebDriver, sites: dict[str, Site],
                                           shots: Callable[[WebDriver, str], None]) -> None:
    site = sites["open"]
    driver.get(site.base + "/dashboard#/")
    driver.execute_script("localStorage.removeItem('mosbridge.span');")
    wait_view(driver, "overview")
    driver.find_element(By.CSS_SELECTOR, '.tile[data-tenant="acme-health"] .tile-name').click()
    wait_view(driver, "tenant")
    assert driver.current_url.endswith("#/tenant/acme-health")
    served = site.api("/api/v1/tenants/acme-health?span_s=86400&bucket_s=300")
    calls = site.api("/api/v1/calls?tenant=acme-health&limit=50")["calls"]

    assert text(driver, ".tenant-title") == "acme-health"
    for key, w in served["windows"].items():
        assert text(driver, f'.stat-card[data-window="{key}"] .mos') == mos_text(w["mean"])
    # The chart holds the served series and draws it: mean line, p10, calls bars.
    n = len(served["series"]["t"])
    assert driver.execute_script("return window.mosbridge.charts.tenant.data[0].length;") == n
    assert chart_pixels(driver, "tenant-chart", "mean", 150) >= 150
    assert chart_pixels(driver, "tenant-chart", "p10", 40) >= 40
    # Threshold lines at 4.0 (amber) and 3.6 (red) across the plot.
    fair = hex_rgb(str(driver.execute_script("return window.mosbridge.BAND_COLOR.fair;")))
    poor = hex_rgb(str(driver.execute_script("return window.mosbridge.BAND_COLOR.poor;")))
    assert canvas_color_pixels(driver, "#tenant-chart canvas", fair, 10) > 300
    assert canvas_color_pixels(driver, "#tenant-chart canvas", poor, 10) > 300

    rows = driver.find_elements(By.CSS_SELECTOR, ".calls-table tbody tr")
    assert len(rows) == len(calls) > 0
    assert [r.get_attribute("data-call-sid") for r in rows] == [c["call_sid"] for c in calls]
    first = calls[0]
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    assert cells[1].text == first["call_sid"]
    assert cells[3].text == mos_text(first["mos"])
    assert "band-" + first["band"] in (cells[3].find_element(By.CSS_SELECTOR, "span").get_attribute("class") or "")
    assert cells[9].text == first["end_reason"]
    alerts = site.api("/api/v1/alerts?tenant=acme-health&limit=20")["alerts"]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".alerts-table tbody tr")) == len(alerts)
    shots(driver, "tenant-24h")

    # The 1 hour toggle reloads the series at 1-minute buckets.
    driver.find_element(By.CSS_SELECTOR, '.toggle button[data-span="1h"]').click()
    wait(driver, lambda d: d.execute_script(
        "const c = window.mosbridge.charts.tenant; return !!c && c.data[0][1] - c.data[0][0] === 60;"))
    assert chart_pixels(driver, "tenant-chart", "mean", 30) >= 30
    shots(driver, "tenant-1h")
    driver.execute_script("localStorage.removeItem('mosbridge.span');")
    assert_no_console_errors(driver)


def test_call_page_shows_intervals_and_contributions(driver: WebDriver, sites: dict[str, Site],
                                                     shots: Callable[[WebDriver, str], None]) -> None:
    site = sites["open"]
    driver.get(site.base + "/dashboard#/tenant/acme-health")
    wait_view(driver, "tenant")
    link = driver.find_element(By.CSS_SELECTOR, ".calls-table tbody tr:first-child a.call-link")
    sid = link.text
    link.click()
    wait_view(driver, "call")
    report = site.api(f"/api/v1/calls/{sid}")
    assert len(report["intervals"]) > 10  # the 60 s call is the newest

    assert text(driver, ".call-title") == sid
    assert text(driver, ".call-mos") == mos_text(report["mos"])
    assert text(driver, ".call-r") == f"{report['r']:.1f}"
    assert text(driver, ".call-dominant") == report["dominant_impairment"]
    assert "vertical=healthcare" in text(driver, ".call-tags")

    data_len = driver.execute_script("return window.mosbridge.charts.intervals.data[0].length;")
    assert data_len == len(report["intervals"]) + 1  # the last step's end
    assert chart_pixels(driver, "interval-chart", "mos", 300) >= 300
    assert chart_pixels(driver, "interval-chart", "loss", 50) >= 50

    for direction in ("inbound", "outbound"):
        card = f'.contrib-dir[data-direction="{direction}"]'
        for imp, value in report[direction]["contributions"].items():
            bar = f'{card} .hbar[data-impairment="{imp}"]'
            assert text(driver, bar + " .val") == f"{value:.1f}"
            width = float(driver.find_element(By.CSS_SELECTOR, bar + " .fill").get_attribute("style")
                          .split("width:")[1].split("%")[0])  # type: ignore[union-attr]
            assert (width > 0) == (value > 0), (direction, imp, value, width)
        dom = report[direction]["dominant_impairment"]
        assert driver.find_elements(By.CSS_SELECTOR, f'{card} .hbar.dominant[data-impairment="{dom}"]')

    for key in ("jitter_ms", "jitter_max_ms"):
        cells = driver.find_elements(By.CSS_SELECTOR, f'tr[data-figure="{key}"] td')
        assert [c.text for c in cells] == [f"{report[d][key]:.1f} ms" for d in ("inbound", "outbound")]
    assert report["inbound"]["jitter_max_ms"] > report["inbound"]["jitter_ms"] > 0
    for name, value in report["counters"].items():
        if value:
            assert text(driver, f'.counters tr[data-key="{name}"] td') == f"{value:,}"
    assert text(driver, '.assumptions tr[data-key="pstn_delay_ms"] td') == "60.0 ms"
    assert_no_stray_null(driver)
    shots(driver, "call")
    assert_no_console_errors(driver)


def test_call_page_tolerates_missing_figures(driver: WebDriver, sites: dict[str, Site]) -> None:
    """A plain Twilio log has no arrival times: jitter is null and shows as a dash."""
    site = sites["open"]
    plain = next(r for r in site.data.reports if r["inbound"]["jitter_ms"] is None)
    driver.get(site.base + f"/dashboard#/call/{plain['call_sid']}")
    wait_view(driver, "call")
    assert [c.text for c in driver.find_elements(By.CSS_SELECTOR, 'tr[data-figure="jitter_ms"] td')] == ["—", "—"]
    assert [c.text for c in driver.find_elements(By.CSS_SELECTOR, 'tr[data-figure="bridge_latency_ms.p99"] td')] \
        == ["—", "—"]
    assert chart_pixels(driver, "interval-chart", "mos", 50) >= 50
    assert_no_console_errors(driver)

    driver.get(site.base + "/dashboard#/call/CAdoesnotexist")
    wait_view(driver, "call")
    assert "Not found" in text(driver, ".error-box")
    # The 404 of the API call is logged by the browser itself; nothing else may be.
    errors = [e for e in console_errors(driver) if "404" not in e.get("message", "")]
    assert not errors, errors


def test_call_page_says_when_the_bridge_itself_was_saturated(driver: WebDriver, sites: dict[str, Site],
                                                             shots: Callable[[WebDriver, str], None]) -> None:
    site = sites["open"]
    saturated = next(r for r in site.data.reports if r.get("bridge_host", {}).get("loop_lag", {}).get("saturated"))
    driver.get(site.base + f"/dashboard#/call/{saturated['call_sid']}")
    wait_view(driver, "call")
    notice = text(driver, ".saturated-notice")
    assert "The bridge was saturated during this call." in notice and "p99 44.0 ms" in notice
    assert "3.00 % of ticks over 20 ms" in notice
    assert text(driver, '.loop-lag tr[data-key="p99_ms"] td') == "44.0 ms"
    assert text(driver, '.loop-lag tr[data-key="saturated"] td') == "yes"
    assert "event loop lagged" in text(driver, '.assumptions tr[data-key="measurement"] td')
    shots(driver, "call-saturated")
    assert_no_console_errors(driver)

    calm = next(r for r in site.data.reports if "bridge_host" not in r and r["tenant"] == saturated["tenant"])
    driver.get(site.base + f"/dashboard#/call/{calm['call_sid']}")
    wait_view(driver, "call")
    wait(driver, lambda d: text(d, ".call-title") == calm["call_sid"])
    assert not driver.find_elements(By.CSS_SELECTOR, ".saturated-notice")
    assert text(driver, ".loop-lag .empty") == "—"
    assert_no_stray_null(driver)


def test_login_flow(driver: WebDriver, sites: dict[str, Site], shots: Callable[[WebDriver, str], None]) -> None:
    site = sites["token"]
    driver.get(site.base + "/dashboard/login")  # same host, other port: cookies are shared by host
    driver.delete_all_cookies()
    driver.get(site.base + "/dashboard")
    assert driver.current_url == site.base + "/dashboard/login"

    driver.find_element(By.ID, "token").send_keys("not-the-token")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".login-error"))
    assert "not the bridge's admin token" in text(driver, ".login-error")
    assert driver.get_cookie(COOKIE) is None
    shots(driver, "login-error")

    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: d.current_url.startswith(site.base + "/dashboard") and "login" not in d.current_url)
    wait_view(driver, "overview")
    cookie = driver.get_cookie(COOKIE)
    assert cookie is not None
    assert cookie["value"] == TOKEN and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and cookie["secure"] is False  # plain http here
    assert len(driver.find_elements(By.CSS_SELECTOR, ".tile")) == len(PLANS)
    assert driver.find_element(By.ID, "logout").is_displayed()

    # The API wants the token too.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(site.base + "/api/v1/tenants", timeout=10)
    assert err.value.code == 401 and "error" in json.loads(err.value.read())

    # A session that goes stale (token rotated, cookie gone) lands on the login page at the next
    # refresh, and signing in again returns to the page it was on.
    driver.get(site.base + "/dashboard#/tenant/globex")
    wait_view(driver, "tenant")
    driver.delete_cookie(COOKIE)
    driver.execute_script("document.dispatchEvent(new Event('visibilitychange'));")  # refresh now
    wait(driver, lambda d: d.current_url == site.base + "/dashboard/login")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_view(driver, "tenant")
    assert driver.current_url.endswith("/dashboard#/tenant/globex")

    driver.find_element(By.ID, "logout").click()
    wait(driver, lambda d: d.current_url == site.base + "/dashboard/login")
    assert driver.get_cookie(COOKIE) is None
    # The 401s (the wrong token, the stale session's API calls) are the only errors the browser
    # may have logged.
    errors = [e for e in console_errors(driver) if "401" not in e.get("message", "")]
    assert not errors, errors


# ------------------------------------------------------------------------------ HTTP-level tests


def _request(headers: dict[str, str] | None = None, remote: str = "127.0.0.1") -> web.Request:
    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (remote, 40000) if name == "peername" else default

    return make_mocked_request("GET", "/api/v1/tenants", headers=headers or {}, transport=Transport())


def test_authorized_rule() -> None:
    assert authorized(_request(), None)
    assert authorized(_request(remote="::1"), None)
    assert not authorized(_request(remote="203.0.113.9"), None)
    assert not authorized(_request(), TOKEN)  # a token configured: loopback is not enough
    assert authorized(_request({"Authorization": f"Bearer {TOKEN}"}, remote="203.0.113.9"), TOKEN)
    assert authorized(_request({"Authorization": f"bearer {TOKEN}"}), TOKEN)
    assert authorized(_request({"Cookie": f"{COOKIE}={TOKEN}"}, remote="203.0.113.9"), TOKEN)
    assert not authorized(_request({"Authorization": "Bearer wrong"}), TOKEN)
    assert not authorized(_request({"Cookie": f"{COOKIE}=wrong"}), TOKEN)
    assert not authorized(_request({"Authorization": f"Basic {TOKEN}"}), TOKEN)


async def test_routes_cookie_flags_and_static_files() -> None:
    app = web.Application()
    add_dashboard_routes(app, TOKEN)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/dashboard", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/dashboard/login"
        r = await client.post("/dashboard/login", data={"token": "nope"}, allow_redirects=False)
        assert r.status == 401 and "login-error" in await r.text()
        r = await client.post("/dashboard/login", data={"token": TOKEN}, allow_redirects=False,
                              headers={"X-Forwarded-Proto": "https"})
        assert r.status == 302 and r.headers["Location"] == "/dashboard"
        set_cookie = r.headers["Set-Cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert flag in set_cookie, set_cookie
        r = await client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and 'data-auth="token"' in await r.text()
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]

        r = await client.get("/dashboard/static/app.js")
        assert r.status == 200 and "javascript" in r.headers["Content-Type"]
        r = await client.get("/dashboard/static/vendor/uplot/uPlot.iife.min.js")
        assert r.status == 200 and "uPlot" in (await r.text())[:200]
        for bad in ("/dashboard/static/../dashboard.py", "/dashboard/static/%2e%2e/dashboard.py",
                    "/dashboard/static/index.html", "/dashboard/static/nope.js"):
            r = await client.get(bad)
            assert r.status == 404, bad


async def test_no_token_means_loopback_only() -> None:
    app = web.Application()
    add_dashboard_routes(app, None)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.get("/dashboard")
        assert r.status == 200 and 'data-auth="loopback"' in await r.text()
        r = await client.get("/dashboard/login", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/dashboard"
