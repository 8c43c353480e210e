"""``mosbridge demo``: real loopback calls fill the store, the bad tenant's MOS alert fires, and the
dashboard shows it (a screenshot in a real Chromium)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from bridge.cli.main import build_parser
from bridge.ops.store import open_store
from bridge.stand_ins.demo import DemoOptions, TenantSummary, run_demo
from tests.bridge.browser import console_errors, full_page_png, start_chromium


def _screenshot(url: str, profile: Path, out: Path) -> str:
    driver = start_chromium(profile)
    try:
        driver.get(url)
        WebDriverWait(driver, 15, poll_frequency=0.1).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile")) >= 3)
        out.write_bytes(full_page_png(driver))
        assert not console_errors(driver)
        return str(driver.find_element(By.TAG_NAME, "body").text)
    finally:
        driver.quit()


async def test_the_demo_fills_the_store_fires_the_alert_and_shows_the_dashboard(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    lines: list[str] = []
    stop = asyncio.Event()
    opts = DemoOptions(duration_s=24.0, call_s=8.0, port=0, database_url=db, alert_for_s=2.0)
    demo = asyncio.create_task(run_demo(opts, say=lines.append, stop=stop))
    async with asyncio.timeout(90):
        while not any(line.startswith("serving until") for line in lines):
            await asyncio.sleep(0.2)
    url = next(line for line in lines if "/dashboard" in line).rsplit(" ", 1)[-1]
    page = await asyncio.to_thread(_screenshot, url, tmp_path / "chromium", tmp_path / "demo-dashboard.png")
    stop.set()
    summary: list[TenantSummary] = await asyncio.wait_for(demo, 30)

    by_tenant = {t.tenant: t for t in summary}
    assert set(by_tenant) == {"acme", "globex", "initech"} and all(t.calls >= 6 for t in summary)
    # the MOS bands the alert is built on (4.0: an incident; 3.6: conversations break)
    assert by_tenant["acme"].mean_mos >= 4.0 and not by_tenant["acme"].firing
    assert by_tenant["initech"].mean_mos < 3.6 and by_tenant["initech"].firing
    for tenant in by_tenant:
        assert tenant in page
    assert (tmp_path / "demo-dashboard.png").stat().st_size > 10_000
    store = open_store(db)
    try:
        assert len(store.list(limit=1000)) == sum(t.calls for t in summary)
    finally:
        store.close()


def test_demo_is_a_command_with_documented_options() -> None:
    args = build_parser().parse_args(["demo", "--duration", "30", "--port", "0", "--exit"])
    assert (args.duration, args.port, args.exit) == (30.0, 0, True)
