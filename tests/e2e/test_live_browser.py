"""The live editor page in a real browser (headless Chromium via Playwright, tests/browser.py)
against two real `backer run` processes: one page on each node, both typing at once; both
pages and both disks end with the same text holding both edits. The file list and the
dashboard link to it; a third editor's name and cursor show on the other editors, of its node and
of the other node (awareness relayed between the nodes)."""

from __future__ import annotations

import pytest

from tests.browser import shot  # the `browser` and `shots` fixtures: tests/conftest.py
from tests.e2e.conftest import backer_json, mesh, wait_until

pytestmark = pytest.mark.e2e


def _web(d) -> str:
    return next(line.split()[-1] for line in d.lines if line.startswith("web on "))


def _page(browser, url):
    context = browser.new_context(viewport={"width": 1100, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return context, page, errors


def test_two_editors_on_two_nodes_type_at_once(tmp_path, daemons, browser, shots) -> None:
    a, b = mesh(tmp_path, daemons, 2, web=True)
    (a.root / "plan.md").write_text("# Plan\n\n")
    backer_json("live", str(a.root), "*.md")
    wait_until(lambda: (b.root / "plan.md").exists(), what="note on B")
    ctx_a, page_a, errors_a = _page(browser, _web(a) + "files")
    page_a.click("a.edit-live")  # the file list links to the editor
    ctx_b, page_b, errors_b = _page(browser, _web(b))  # the dashboard links to it too
    page_b.click("a.live-note >> text=plan.md", timeout=20_000)
    try:
        for page in (page_a, page_b):
            page.wait_for_selector("#status:has-text('in sync')", timeout=20_000)
            page.wait_for_selector(".cm-content:has-text('Plan')", timeout=20_000)
        page_a.click(".cm-content")
        page_b.click(".cm-content")
        page_a.keyboard.press("Control+End")
        page_b.keyboard.press("Control+End")
        for ka, kb in zip("alpha from A ✓", "beta from B ü!"):
            page_a.keyboard.type(ka)
            page_b.keyboard.type(kb)
        texts = lambda: [p.evaluate("window.backerEditor.ytext.toString()") for p in (page_a, page_b)]
        wait_until(lambda: texts()[0] == texts()[1] and "alpha from A ✓" in texts()[0]
                   and "beta from B ü!" in texts()[0], timeout=20, what="both pages hold both edits")
        final = texts()[0]
        wait_until(lambda: (a.root / "plan.md").read_text() == final == (b.root / "plan.md").read_text(),
                   timeout=20, what="both disks hold the page's text")
        # a second editor on node A: its name and cursor show on the first (awareness)
        ctx_c, page_c, errors_c = _page(browser, _web(a) + "editor?path=plan.md")
        page_c.fill("#name", "Carol")
        page_c.press("#name", "Enter")
        page_c.wait_for_selector("#status:has-text('in sync')", timeout=20_000)
        page_c.click(".cm-content")
        page_c.keyboard.press("Control+Home")
        page_c.keyboard.type("!")
        page_a.wait_for_selector("#editors:has-text('Carol')", timeout=10_000)
        page_a.wait_for_selector(".cm-ySelectionInfo:has-text('Carol')", state="attached",
                                 timeout=10_000)
        page_b.wait_for_selector("#editors:has-text('Carol')", timeout=10_000)  # on node B too
        page_b.wait_for_selector(".cm-ySelectionInfo:has-text('Carol')", state="attached",
                                 timeout=10_000)
        page_b.hover(".cm-ySelectionCaret")  # its name shows on the caret (look at the shot)
        shot(page_a, shots, "live-editor-a")
        shot(page_b, shots, "live-editor-b")
        ctx_c.close()  # Carol leaves: her cursor goes on node B as well
        page_b.wait_for_selector("#editors:not(:has-text('Carol'))", timeout=10_000)
        page_b.wait_for_selector(".cm-ySelectionInfo:has-text('Carol')", state="detached",
                                 timeout=10_000)
        assert not errors_a and not errors_b and not errors_c, errors_a + errors_b + errors_c
    finally:
        ctx_a.close()
        ctx_b.close()
