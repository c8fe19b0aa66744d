"""Shared by the browser tests: a loopback server in a thread, and the system Chromium."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from demotrace.web.serving import LoopbackServer

#: The system's Chromium; Playwright never downloads a browser here.
CHROMIUM = shutil.which("chromium")


@contextmanager
def running(server: LoopbackServer, what: str = "the page") -> Iterator[str]:
    """Run ``server`` in a thread until the block ends; yields its URL once it listens."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.server.started:
        assert time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.02)
    try:
        yield server.url
    finally:
        server.stop()
        thread.join(timeout=10)


@contextmanager
def chromium_page(timeout_ms: int = 5000) -> Iterator[Any]:
    """A headless page of the system Chromium, 1280x800."""
    from playwright import sync_api

    assert CHROMIUM is not None, "chromium is not installed"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()
