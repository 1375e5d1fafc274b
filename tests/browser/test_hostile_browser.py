"""A store made by someone else, in a real browser: hostile labels and column names stay
text in every widget (a ``?filters=`` link included), and the page needs no network."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from playwright.sync_api import Page, Request, Route

from explorer.app.panes.controls import DENSITY_LABEL
from explorer.app.panes.filters import ADD_PROMPT
from tests.browser.conftest import Served, artifact, frame_box, open_app, wait_until
from tests.helpers import HOSTILE_COLUMN, HOSTILE_LABELS

pytestmark = pytest.mark.browser

LOCAL_HOSTS = ("127.0.0.1",)


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def test_hostile_labels_stay_text_and_nothing_leaves_the_machine(
    page: Page, served_hostile: Served
) -> None:
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    def offline(route: Route) -> None:  # the test machine is offline too: fail fast
        if _host(route.request.url) in LOCAL_HOSTS or route.request.url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    page.on("request", record)
    page.route("**/*", offline)
    link = json.dumps({"label": [HOSTILE_LABELS[0]]}, separators=(",", ":"))
    app = open_app(page, served_hostile, "?filters=" + urllib.parse.quote(link))
    assert app.state.filters == {"label": [HOSTILE_LABELS[0]]}
    # The filter's dropdown, opened: every option is in the page, as text.
    page.locator(".choices").first.click()
    page.wait_for_timeout(300)
    for label in HOSTILE_LABELS:
        page.get_by_text(label).first.wait_for(state="attached", timeout=10_000)
    page.keyboard.press("Escape")
    # Colour by the hostile column, then filter on it, through the page's selects.
    selects = page.locator("select")
    texts = [selects.nth(i).text_content() or "" for i in range(selects.count())]
    colour = next(i for i, text in enumerate(texts) if DENSITY_LABEL in text)
    selects.nth(colour).select_option(label=HOSTILE_COLUMN)
    wait_until(lambda: app.state.color_by == HOSTILE_COLUMN, page)
    add = next(i for i, text in enumerate(texts) if ADD_PROMPT in text)
    selects.nth(add).select_option(label=HOSTILE_COLUMN)
    wait_until(lambda: HOSTILE_COLUMN in app.pane("filters").widgets, page)
    page.get_by_text("<b>bold</b>").first.wait_for(state="attached", timeout=10_000)
    # A box over the whole map: the selection pane, its stats and the legend show labels.
    left, top, width, height = frame_box(page, app)
    page.locator(".bk-tool-icon-box-select").first.click()
    page.mouse.move(left + 2, top + 2)
    page.mouse.down()
    page.mouse.move(left + width - 2, top + height - 2, steps=8)
    page.mouse.up()
    wait_until(lambda: app.state.n_selected, page)
    app.state.pinned = int(app.state.selection[0])  # the point card
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifact("browser-hostile.png")), full_page=True)
    assert page.evaluate("window.__pwned") is None
    outside = sorted({u for u in requested if _host(u) not in LOCAL_HOSTS})
    assert requested
    assert outside == [], f"{len(outside)} requests left 127.0.0.1, e.g. {outside[:3]}"
    # Nor MathJax (1.8 MB): no pane of ours renders math, labels with $$ stay text.
    assert not [u for u in requested if "mathjax" in u.lower()]
