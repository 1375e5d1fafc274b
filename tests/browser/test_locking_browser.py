"""Document changes from any callback are safe: the sequence a user hit (change "Colour by",
then Unpin) used to raise ``_pending_writes should be non-None`` and leave the card and
the map out of step."""

from __future__ import annotations

import logging

import pytest
from playwright.sync_api import Page

from explorer.app.shell import ExplorerApp
from tests.browser.conftest import Served, click_data, open_app, wait_until

pytestmark = pytest.mark.browser


def pin(page: Page, app: ExplorerApp, x: float, y: float) -> None:
    """Click the point at ``(x, y)`` until it is pinned (the view may still be settling)."""
    for _ in range(5):
        click_data(page, app.map.figure.id, x, y)
        try:
            wait_until(lambda: app.state.pinned is not None, page, timeout=3)
            return
        except pytest.fail.Exception:
            page.wait_for_timeout(300)
    pytest.fail("the point could not be pinned")


def test_unpin_after_colour_change(
    page: Page, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    app = open_app(page, served)
    x, y = app.resources.store.layout(app.state.layout)[12]
    for _ in range(3):
        pin(page, app, float(x), float(y))
        wait_until(lambda: len(app.map._map.pinned.data["x"]) == 1, page)
        page.get_by_role("combobox", name="Colour by").select_option(label="size")
        wait_until(lambda: app.state.color_by == "size", page)
        page.get_by_role("button", name="Unpin").click()
        wait_until(lambda: app.state.pinned is None, page)
        # The map's marks follow the state: no pinned ring left behind.
        wait_until(lambda: app.map._map.pinned.data["x"] == [], page)
        page.get_by_role("combobox", name="Colour by").select_option(label="label")
        wait_until(lambda: app.state.color_by == "label", page)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in errors if "_pending_writes" in r.getMessage() + str(r.exc_info)]
