"""What the browser tests share: Debian's headless Chromium through Playwright (a missing one
fails under CI), the endpoint served on a real server thread, and pages opened at a desktop and a
phone width (screenshots kept when PUBLISHER_WEB_SHOTS names a folder)."""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from web_helpers import Clock, WebSite, web_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "mobile": {"width": 390, "height": 844}}
SHOTS = os.environ.get("PUBLISHER_WEB_SHOTS")


def _unavailable(reason: str):
    # In CI a missing browser is a broken environment, not a reason to pass quietly.
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"playwright is not installed ({e})")
    if not CHROMIUM.is_file():
        _unavailable(f"{CHROMIUM} is missing")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()




class WallClock(Clock):
    """The browser's own requests need no clock control; links must simply be fresh."""

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc)


class Pages:
    """One browser context per viewport; every page is checked for CSP violations."""

    def __init__(self, browser, base: str):
        self.base = base
        self.violations: list[str] = []
        self.contexts = {}
        self.pages = {}
        for name, viewport in VIEWPORTS.items():
            context = browser.new_context(viewport=viewport, is_mobile=name == "mobile",
                                          has_touch=name == "mobile", java_script_enabled=False)
            page = context.new_page()
            page.on("console", lambda m: self.violations.append(m.text)
                    if "Content Security Policy" in m.text else None)
            self.contexts[name], self.pages[name] = context, page

    @property
    def desktop(self):
        return self.pages["desktop"]

    def shoot(self, label: str, url: str | None = None, only: str | None = None, *,
              status: int = 200) -> None:
        """Open `url` in every viewport (GETs only: they change nothing), each answering
        `status`, and keep screenshots."""
        for name, page in self.pages.items():
            if only and name != only:
                continue
            if url is not None:
                assert page.goto(url).status == status, (name, url)
            if SHOTS:
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SHOTS) / f"{label}-{name}.png"), full_page=True)

    def close(self) -> None:
        for context in self.contexts.values():
            context.close()


@contextlib.contextmanager
def live_site(root: Path, smtp_server, **config) -> Iterator[WebSite]:
    """The endpoint on a real server thread; newsletter.web_url is that server's own URL;
    `config`: more web_config keywords (e.g. topics)."""
    from werkzeug.serving import make_server

    holder = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True)
    web_url = f"http://127.0.0.1:{server.server_port}"
    site = WebSite(root, smtp_server, clock=WallClock(),
                   config=web_config(root, smtp_server, web_url=web_url, **config))
    holder["app"] = site.app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        site.close()
