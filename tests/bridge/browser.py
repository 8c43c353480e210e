"""Headless Chromium for the dashboard tests (selenium, Debian's chromium and chromedriver).

The tests fail, not skip, without them: CI installs ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = ["WebDriver", "canvas_color_pixels", "console_errors", "full_page_png", "hex_rgb", "start_chromium"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1440, 1000)


def start_chromium(profile_dir: Path, window: tuple[int, int] = WINDOW) -> WebDriver:
    """A headless Chromium with a fresh profile in ``profile_dir`` and the browser console log on."""
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists() and shutil.which(Path(exe).name) is None:
            raise RuntimeError(f"{exe} is missing: apt-get install chromium chromium-driver (bootstrap.sh --dev does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--force-device-scale-factor=1", "--hide-scrollbars", f"--user-data-dir={profile_dir}",
                f"--window-size={window[0]},{window[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if Path(CHROMEDRIVER).exists()
                                              else str(shutil.which("chromedriver"))), options=options)
    driver.set_window_size(*window)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    return driver


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """Browser console entries at level SEVERE since the last call (reading drains the log)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e for e in entries if e.get("level") == "SEVERE"]


def full_page_png(driver: WebDriver) -> bytes:
    """A screenshot of the whole page, not just the viewport (Chrome DevTools protocol)."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    return base64.b64decode(shot["data"])


# Counts pixels of a canvas within ``tol`` of an RGB colour (per channel, alpha > 0).
_COUNT_COLOR_JS = """
const [selector, rgb, tol] = arguments;
const canvas = document.querySelector(selector);
if (!canvas) return -1;
const ctx = canvas.getContext('2d');
const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] > 0 && Math.abs(data[i] - rgb[0]) <= tol && Math.abs(data[i + 1] - rgb[1]) <= tol
      && Math.abs(data[i + 2] - rgb[2]) <= tol) n++;
}
return n;
"""


def canvas_color_pixels(driver: WebDriver, selector: str, rgb: tuple[int, int, int], tol: int = 24) -> int:
    """How many pixels of the canvas at ``selector`` have (about) colour ``rgb``; -1 without a canvas."""
    return int(driver.execute_script(_COUNT_COLOR_JS, selector, list(rgb), tol))


def hex_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
