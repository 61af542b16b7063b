"""A real browser for the web apps' tests: headless Chromium (Debian's ``chromium`` package,
which ``.ci/run`` installs) driven by Playwright, and a free local port for each app."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest

#: the system Chromium (Playwright's own browser download is not reachable offline)
CHROMIUM = os.environ.get("CHROMIUM", "chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One headless Chromium for a test module; a missing browser fails the test in one line."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which(CHROMIUM)
    if executable is None:
        pytest.fail(f"no {CHROMIUM!r} on PATH: apt-get install chromium (or set CHROMIUM=path)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    """A fresh page (tab) with a desktop-sized viewport, for screenshots the docs can show."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
