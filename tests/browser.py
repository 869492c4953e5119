"""Headless Chromium for the page tests: Debian's chromium and chromium-driver driven by Selenium, axe-core
for accessibility, full-page screenshots, and a page on another site to forge cross-site requests from.

Nothing is ever downloaded: the driver and the browser are the Debian ones at fixed paths (so Selenium
Manager is never asked), and axe-core is the copy ``sh scripts/bootstrap test`` installs into .cache/npm.

    with Browser.phone() as b:
        b.get(f"http://127.0.0.1:{port}/")
        assert not serious(b.axe()), describe(serious(b.axe()))
        b.screenshot(tmp_path / "home.png")
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import tempfile
import time
from base64 import b64decode
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from html import escape
from pathlib import Path

import pytest

from conftest import ROOT, LoopbackHTTP

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AXE_JS = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"

SITE = "127.0.0.1"  # the host the page tests load the server under test from
OTHER_SITE = "localhost"  # the same loopback listeners, but another site to the browser (no cookies, cross-site)

DESKTOP = (1280, 900)
PHONE = (390, 844)

FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check", "--disable-default-apps",
)


def _missing(what: str) -> None:
    message = f"{what} is missing (`sh scripts/bootstrap test` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_browser() -> None:
    """Skip the test, or under CI fail it, when Debian's chromium or chromium-driver is not installed."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            _missing(f"{path} (Debian package {package})")


_axe_source: str | None = None


def axe_source() -> str:
    """The text of axe.min.js; skips the test, or under CI fails it, when it is not installed."""
    global _axe_source
    if _axe_source is None:
        if not AXE_JS.is_file():
            _missing(f"{AXE_JS.relative_to(ROOT)} (npm package axe-core)")
        _axe_source = AXE_JS.read_text(encoding="utf-8")
    return _axe_source


class Browser:
    """A headless Chromium with a fresh profile, quit (with every process it started) on ``close``."""

    def __init__(self, width: int = DESKTOP[0], height: int = DESKTOP[1], *, mobile: bool = False) -> None:
        require_browser()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="rbl-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        except BaseException:
            self._reap()
            raise
        try:
            self.driver.set_script_timeout(30)
            self.driver.set_page_load_timeout(30)
            self.resize(width, height, mobile=mobile)
        except BaseException:
            self.close()
            raise

    @classmethod
    def desktop(cls) -> Browser:
        return cls(*DESKTOP)

    @classmethod
    def phone(cls) -> Browser:
        """390 CSS px wide, as a phone: ``<meta name=viewport content="width=device-width">`` is honoured."""
        return cls(*PHONE, mobile=True)

    def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        """The viewport in CSS px (device scale 1); ``mobile`` also emulates touch and the viewport meta tag.
        Takes effect at once, on the page shown and on this tab's later loads."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})

    def get(self, url: str) -> None:
        self.driver.get(url)

    def axe(self, options: Mapping | None = None) -> list[dict]:
        return axe(self.driver, options)

    def screenshot(self, path: Path | str) -> Path:
        return screenshot(self.driver, path)

    def horizontal_overflow(self) -> int:
        """How many CSS px the page is wider than the viewport (0 when nothing scrolls sideways). On a phone
        a page wider than ``width=device-width`` is zoomed out to fit, so ``window.innerWidth`` grows (to 600
        for 600 px of content) while ``documentElement.clientWidth`` stays 390: this measures against the latter."""
        return self.driver.execute_script(
            "const e = document.documentElement; return Math.max(0, e.scrollWidth - e.clientWidth)")

    def console(self) -> list[dict]:
        """The console messages since the last call (CSP violations and failed loads are level SEVERE)."""
        return self.driver.get_log("browser")

    def post_cross_site(self, action: str, fields: Mapping[str, str] | None = None) -> str:
        """Submit, from a page on another site, a form POSTing ``fields`` to ``action`` (as a forged
        cross-site request would); returns, once the browser shows the response, the forging page's
        origin (``http://localhost:PORT``: the request's ``Origin`` header)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        with cross_site_form(action, fields) as url:
            self.driver.get(url)
            self.driver.find_element(By.ID, "forge").click()
            WebDriverWait(self.driver, 10).until(
                lambda d: d.current_url != url and d.execute_script("return document.readyState") == "complete")
        return url.rstrip("/")

    def processes(self) -> list[int]:
        """The pids of the live processes of this browser (those running with its profile directory)."""
        needle = f"--user-data-dir={self.profile}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self._reap()

    def _reap(self) -> None:
        """Kill (by pid) whatever of this browser outlived ``quit``, then remove its profile."""
        deadline = time.monotonic() + 5
        while (pids := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_RUN_AXE = """
const [options, done] = arguments;
axe.run(document, options).then(
  r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        tags: v.tags, nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary}))}))),
  e => done({error: String(e && e.stack || e)}));
"""


def axe(driver, options: Mapping | None = None) -> list[dict]:
    """The axe-core violations on the page shown: dicts of id, impact, help, helpUrl, tags and nodes
    (target selectors, html, summary). ``options`` go to ``axe.run`` (e.g. ``{"runOnly": ["wcag2aa"]}``).

    axe is injected through WebDriver (CDP ``Runtime.callFunctionOn``), which the page's
    Content-Security-Policy does not govern, so it works under ``script-src 'none'``."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_source())
    result = driver.execute_async_script(_RUN_AXE, dict(options or {}))
    if isinstance(result, dict):
        raise AssertionError(f"axe.run failed: {result['error']}")
    return result


def serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def describe(violations: list[dict], targets: int = 3) -> str:
    """One line per violation, for an assertion message: rule, impact, help and the first few targets."""
    lines = []
    for v in violations:
        where = [" ".join(map(str, n["target"])) for n in v["nodes"]]
        more = f" (+{len(where) - targets} more)" if len(where) > targets else ""
        lines.append(f"{v['id']} [{v['impact']}] {v['help']}: {', '.join(where[:targets])}{more}")
    return "\n".join(lines) or "no violations"


def screenshot(driver, path: Path | str) -> Path:
    """A PNG of the whole page (beyond the viewport), one pixel a CSS px: as wide as the window (scrollbar
    included) or, if the page is wider, as the page."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    width = max(size["width"], driver.execute_script("return window.innerWidth"))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}})
    path = Path(path)
    path.write_bytes(b64decode(shot["data"]))
    return path


def png_size(path: Path | str) -> tuple[int, int]:
    """Width and height of a PNG file; AssertionError if it is not one."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@contextmanager
def serving(app, name: str = "browser-http") -> Iterator[LoopbackHTTP]:
    """An aiohttp ``app`` on a free loopback port for the test's duration; reach it as
    ``http://{SITE}:{port}`` or, as another site, ``http://{OTHER_SITE}:{port}``."""
    http = LoopbackHTTP(name)
    http.start(app)
    try:
        yield http
    finally:
        http.stop()


@contextmanager
def cross_site_form(action: str, fields: Mapping[str, str] | None = None) -> Iterator[str]:
    """The URL of a page on another site (``http://localhost:PORT/``) holding a form that POSTs ``fields``
    (hidden inputs) to ``action``, with a submit button ``#forge``."""
    from aiohttp import web

    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
                     for k, v in (fields or {}).items())
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another site</title></head><body>'
            f'<form method="post" action="{escape(action)}">{inputs}<button id="forge" type="submit">Send</button>'
            f'</form></body></html>')

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve)
    with serving(app, "cross-site") as http:
        yield f"http://{OTHER_SITE}:{http.port}/"

