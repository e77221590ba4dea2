"""The GUI's pages in a real browser (headless Chromium via Playwright, tests/browser.py),
against two real `backer run` processes of one mesh on 127.0.0.1.

Each test leaves a screenshot of the pages it used in the `shots` folder (printed at the start).
The last test pauses node B's root on purpose (and brings it back), so it runs last.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.browser import shot  # the `browser` and `shots` fixtures: tests/conftest.py
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gui(mesh2):
    """Two real nodes A and B with web GUIs (tests/web/conftest.py)."""
    return mesh2


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    p.on("dialog", lambda dialog: dialog.accept())
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    context.close()
    assert not errors, errors  # no script error on any page


def test_browse_to_a_file_and_see_its_history(gui, page, shots) -> None:
    page.goto(gui.url_a)
    page.wait_for_selector("#sync-state:has-text('In sync')", timeout=20_000)
    shot(page, shots, "01-dashboard")
    page.click("nav >> text=Files")
    page.click("a.entry.dir >> text=docs")
    page.wait_for_selector("#crumbs >> text=docs")
    page.wait_for_selector("#entries >> text=plan.txt")  # the listing arrives after the crumbs
    assert page.inner_text("#entries").count("plan.txt") == 1
    shot(page, shots, "02-files-docs")
    page.click("a.entry.file >> text=plan.txt")
    page.wait_for_selector("#versions tr")
    assert page.inner_text("#title") == "docs/plan.txt"
    assert "current" in page.inner_text("#versions")
    shot(page, shots, "03-file-page")


def test_restore_an_older_version_reaches_the_other_nodes_disk(gui, page, shots) -> None:
    plan_b = gui.b.root / "docs" / "plan.txt"
    (gui.b.root / "docs" / "plan.txt").write_text("milk\neggs\nbutter\nbread\n")
    wait_until(lambda: "butter" in (gui.a.root / "docs" / "plan.txt").read_text(),
               what="the edit on node a")
    page.goto(f"{gui.url_a}file?path=docs/plan.txt")
    page.wait_for_selector("button.restore")
    page.click("#compare")  # the defaults: the previous version left, the current one right
    page.wait_for_selector("#diff tr.d-added")
    assert "butter" in page.inner_text("#diff tr.d-added")
    shot(page, shots, "04-file-diff")
    page.click("button.restore >> nth=0")
    page.wait_for_selector("#notice:has-text('Restored')")
    shot(page, shots, "05-file-restored")
    wait_until(lambda: plan_b.read_text() == "milk\neggs\nbread\n", timeout=20,
               what="the restored version on node b's disk")


def test_resolve_a_conflict_from_the_conflicts_page(gui, page, shots) -> None:
    copy = "list.sync-conflict-20260101-120000-ZZZZZZZ.txt"
    (gui.a.root / "list.txt").write_text("apples\npears\n")
    (gui.a.root / copy).write_text("apples\nplums\n")
    wait_until(lambda: (gui.b.root / copy).exists(), what="the conflict copy on node b")
    page.goto(f"{gui.url_b}conflicts")
    card = page.wait_for_selector(f"article.conflict[data-path='{copy}']")
    assert "plums" in card.inner_text() and "pears" in card.inner_text()  # the diff
    shot(page, shots, "06-conflicts")
    page.click(f"article.conflict[data-path='{copy}'] button.keep-copy")
    page.wait_for_selector("#notice:has-text('Resolved')")
    page.wait_for_selector("#none", state="visible", timeout=20_000)
    shot(page, shots, "07-conflicts-resolved")
    wait_until(lambda: (gui.a.root / "list.txt").read_text() == "apples\nplums\n"
               and not (gui.a.root / copy).exists(), timeout=20,
               what="the choice made on b applied on a's disk")


def test_create_a_share_and_download_it_with_no_token(gui, page, browser, shots) -> None:
    page.goto(f"{gui.url_a}shares")
    page.fill("#share-path", "docs")
    page.select_option("#share-expires", "86400")
    page.click("#share-create")
    row = page.wait_for_selector("#shares tr")
    url = row.query_selector("input.link-url").input_value()
    assert "/s/" in url and len(url.rstrip("/").rsplit("/", 1)[-1]) >= 22
    shot(page, shots, "08-shares")

    stranger = browser.new_context()  # no cookie, no token: a stranger who got the link
    try:
        visit = stranger.new_page()
        visit.goto(url)
        assert "plan.txt" in visit.inner_text("body")
        shot(visit, shots, "09-share-listing")
        with visit.expect_download() as download:
            visit.click("text=Download all as .zip")
        saved = Path(download.value.path())
        import zipfile

        with zipfile.ZipFile(saved) as zf:
            assert zf.read("plan.txt") == (gui.a.root / "docs" / "plan.txt").read_bytes()
        response = visit.goto(url + "plan.txt")
        assert response.status == 200 and response.body() == (gui.a.root / "docs/plan.txt").read_bytes()
        assert visit.goto(gui.url_a + "api/status").status == 200  # loopback GUI: no token needed
    finally:
        stranger.close()
    page.reload()
    page.wait_for_selector("#shares td.downloads:not(:has-text('0'))", timeout=20_000)
    page.click("#shares button.revoke")
    page.wait_for_selector("#no-shares", state="visible")


def test_peers_page_makes_invites_and_removes_after_confirmation(gui, browser, shots) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{gui.url_a}peers")
    page.check("#invite-read-only")
    page.click("#invite-create")
    page.wait_for_selector("#invite-box", state="visible")
    assert page.input_value("#invite-text").startswith("backer-invite-")
    assert "read-only" in page.inner_text("#invite-until")
    page.wait_for_selector("#peer-rows tr")
    shot(page, shots, "10-peers")
    page.once("dialog", lambda dialog: dialog.dismiss())  # "Remove beta?" -> Cancel
    page.click("#peer-rows button.remove")
    time.sleep(0.5)
    assert len(gui.a.status()["peers"]) == 1  # nothing happened
    context.close()


def test_dashboard_shows_a_paused_root(gui, page, shots) -> None:
    root = gui.b.root
    away = root.with_name("B-unmounted")
    os.rename(root, away)  # the disk went away
    try:
        page.goto(gui.url_b)
        page.wait_for_selector("#sync-state:has-text('Paused')", timeout=30_000)
        assert page.is_visible("#problems-card")
        assert "What to do" in page.inner_text("#problems")
        shot(page, shots, "11-dashboard-paused")
    finally:
        os.rename(away, root)
