"""Search and SQL in headless Chromium on the digits sample."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Served, artifact, open_app, wait_until

pytestmark = pytest.mark.browser


def test_search_types_counts_and_pins(page: Page, served_digits: Served) -> None:
    app = open_app(page, served_digits)
    box = page.get_by_placeholder("a word, a phrase or an id (Enter)")
    box.fill("digit-0042")
    box.press("Enter")
    wait_until(lambda: app.state.pinned == 42, page)
    assert app.state.n_selected == 1
    # The count is on the page (Playwright's text locator reaches into the panes).
    wait_until(lambda: page.get_by_text("1 matching points").count() > 0, page)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifact("browser-search.png")))


def test_sql_clause_gives_the_exact_rows(page: Page, served_digits: Served) -> None:
    app = open_app(page, served_digits)
    points = app.resources.store.points
    box = page.get_by_placeholder("label = '7' AND outlier > 0.3")
    box.fill("label = '3' AND confidence < 0.9")
    page.get_by_role("button", name="Select", exact=True).click()
    label = points["label"].astype(str).to_numpy()
    expected = np.flatnonzero((label == "3") & (points["confidence"].to_numpy() < 0.9))
    wait_until(lambda: app.state.selection.tolist() == expected.tolist(), page)
    for clause in ("label = ", "1=1; DROP TABLE points", "1=1 UNION SELECT 1"):
        box.fill(clause)
        page.get_by_role("button", name="Select", exact=True).click()
        wait_until(lambda c=clause: app.pane("find").last_message != "" and
                   "matching" not in app.pane("find").last_message, page)  # fmt: skip
        message = app.pane("find").last_message
        assert "\n" not in message
        assert app.state.selection.tolist() == expected.tolist()  # unchanged
        app.pane("find").last_message = ""
    page.screenshot(path=str(artifact("browser-sql.png")))
