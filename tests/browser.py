"""A real browser for the GUI tests: Debian's Chromium, driven by Playwright.

Import the fixtures where a test needs them (`from tests.browser import browser, shots`):
- `browser`: one headless Chromium for the session (Playwright's own driver; the browser is
  /usr/bin/chromium, which .ci/run installs: `playwright install` is never run);
- `shots`: a folder for screenshots (kept under pytest's temporary directory; its path is
  printed) and `shot(page, name)` saves one there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("BACKER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                    "(.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots in {folder}")
    return folder


def shot(page, folder: Path, name: str) -> Path:
    """A full-page screenshot `folder/NAME.png`."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
