"""The served app in headless Chromium: it draws, selects with the mouse, exports, and
never runs metadata as code. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import Page

from explorer.app.shell import ExplorerApp
from tests.browser.conftest import (
    Served,
    artifact,
    drag_box,
    frame_box,
    open_app,
    screen_xy,
    wait_until,
)
from tests.helpers import XSS

pytestmark = pytest.mark.browser


def drag_share(page: Page, app: ExplorerApp, share: tuple[float, float, float, float]) -> None:
    """Box-select from/to fractions ``(fx0, fy0, fx1, fy1)`` of the plotting area."""
    left, top, width, height = frame_box(page, app)
    fx0, fy0, fx1, fy1 = share
    drag_box(page, left + fx0 * width, top + fy0 * height, left + fx1 * width, top + fy1 * height)


def test_map_is_not_blank(page: Page, served: Served) -> None:
    app = open_app(page, served)
    shot = artifact("browser-map.png")
    page.screenshot(path=str(shot))
    png = page.locator(".bk-Canvas").first.screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    # Coloured (not white, not grey axis text) pixels: the points.
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    assert int((spread > 40).sum()) > 300, f"map looks blank; see {shot}"
    assert app.map.last_result is not None
    assert app.map.last_result.frame.n_in_view == 600


def test_box_selection_changes_the_count(page: Page, served: Served) -> None:
    app = open_app(page, served)
    assert app.state.n_selected == 0
    drag_share(page, app, (0.05, 0.05, 0.6, 0.7))
    n = wait_until(lambda: app.state.n_selected, page)
    assert app.state.selection_source == "map"
    page.get_by_text(f"{n:,} of 600 points selected").wait_for(timeout=10_000)
    # The map shows the selection once the highlighted frame has arrived.
    wait_until(lambda: app.map.last_result and app.map.last_result.frame.n_highlight_in_view, page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifact("browser-box-selection.png")))


def test_download_holds_the_selected_ids(page: Page, served: Served) -> None:
    app = open_app(page, served)
    drag_share(page, app, (0.3, 0.2, 0.95, 0.95))
    n = wait_until(lambda: app.state.n_selected, page)
    button = page.get_by_role("button", name=f"Download {n:,} selected points")
    button.wait_for(timeout=10_000)
    with page.expect_download(timeout=20_000) as info:
        button.click()
    path = info.value.path()
    table = pd.read_parquet(path)
    expected = app.resources.column("pid")[app.state.selection].tolist()
    assert table["pid"].tolist() == expected
    assert info.value.suggested_filename == "selection.parquet"


def test_metadata_is_shown_as_text_never_run(page: Page, served: Served) -> None:
    app = open_app(page, served)
    notes = app.resources.column("note")
    row = int(np.flatnonzero(notes == XSS)[0])
    x, y = app.resources.index(app.state.layout).coords[row]
    sx, sy = screen_xy(page, app, float(x), float(y))
    page.mouse.move(sx + 2, sy)
    page.mouse.move(sx, sy)
    page.mouse.click(sx, sy)
    wait_until(lambda: app.state.pinned is not None, page)
    pinned = app.state.pinned
    assert pinned is not None
    assert notes[pinned] == XSS
    page.get_by_text(XSS).first.wait_for(timeout=10_000)  # shown, as text
    page.screenshot(path=str(artifact("browser-xss-as-text.png")))
    assert page.evaluate("window.__pwned") is None


def test_map_is_wider_than_the_tabs_and_every_tab_is_in_sight(page: Page, served: Served) -> None:
    """At 1400 px the map had a third less width than the tabs beside it, and the last tab
    headers were scrolled out of sight: the map now gets the larger share, tabs wrap."""
    open_app(page, served)
    canvas = page.locator(".bk-Canvas").first.bounding_box()
    tabs = page.locator(".bk-panel-models-tabs-Tabs").first.bounding_box()
    assert canvas is not None
    assert tabs is not None
    assert canvas["width"] > tabs["width"]
    headers = page.locator(".bk-panel-models-tabs-Tabs .bk-tab")
    assert headers.count() >= 5
    for i in range(headers.count()):
        box = headers.nth(i).bounding_box()
        assert box is not None
        assert tabs["x"] <= box["x"]
        assert box["x"] + box["width"] <= tabs["x"] + tabs["width"] + 1


def test_legend_swatches_are_styled(page: Page, served_digits: Served) -> None:
    """The legend's colour swatches get the fragments' stylesheet (Panel's design once
    replaced the legend Div's stylesheets, leaving each swatch 0 px wide)."""
    app = open_app(page, served_digits)
    assert app.state.color_by == "label"
    swatches = page.locator(".ex-sw")
    swatches.first.wait_for(timeout=10_000)
    assert swatches.count() == 10
    box = swatches.first.bounding_box()
    assert box is not None
    assert box["width"] >= 8
