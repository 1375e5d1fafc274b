"""Browser tests: Debian's Chromium driven by Playwright against one app server per session.

Never ``playwright install`` (it downloads a browser): ``make test`` installs the
``chromium`` apt package and we launch ``/usr/bin/chromium``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from explorer.app.server import serve
from explorer.app.shell import ExplorerApp
from tests.helpers import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: `make test` installs Debian's chromium package")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ],
    }  # fmt: skip


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """Replaces pytest-base-url's fixture, which pytest 9 warns about (an error here)."""
    return None


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 950}}


@dataclass
class Served:
    """A running app server and the apps (sessions) it has made, newest last."""

    url: str
    apps: list[ExplorerApp] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def serve_store(store: Path, host: str = "localhost") -> tuple[Served, Any]:
    """``build_app(store)`` served in a thread, recording every session's app."""
    port = free_port()
    result = Served(f"http://{host}:{port}/")
    server = serve(store, port=port, show=False, threaded=True, on_app=result.apps.append)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return result, server


@pytest.fixture(scope="session")
def served(tiny_store: Path) -> Iterator[Served]:
    """The tiny store's app, served in a thread."""
    result, server = serve_store(tiny_store)
    yield result
    server.stop()


@pytest.fixture(scope="session")
def served_hostile(hostile_store: Path) -> Iterator[Served]:
    """The hostile-label store's app, served on 127.0.0.1 in a thread.

    With ``BOKEH_RESOURCES=cdn`` set, as on a machine configured for notebooks: the
    server must still hand out every resource itself.
    """
    before = os.environ.get("BOKEH_RESOURCES")
    os.environ["BOKEH_RESOURCES"] = "cdn"
    try:
        result, server = serve_store(hostile_store, host="127.0.0.1")
        yield result
        server.stop()
    finally:
        if before is None:
            os.environ.pop("BOKEH_RESOURCES", None)
        else:
            os.environ["BOKEH_RESOURCES"] = before


def wait_until(check: Callable[[], Any], page: Page, timeout: float = 15.0) -> Any:
    """Poll ``check`` (letting the page run) until it is truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {check}")
        page.wait_for_timeout(50)


def open_app(page: Page, served: Served, query: str = "") -> ExplorerApp:
    """Load the app in ``page``; return its session's app once the map shows a real frame."""
    before = len(served.apps)
    page.goto(served.url + query)
    page.wait_for_selector(".bk-Canvas", timeout=30_000)
    app = wait_until(lambda: len(served.apps) > before and served.apps[-1], page)
    # The first frame is drawn at a guessed size; the next one follows the browser's ranges.
    wait_until(lambda: app.map.frames_drawn >= 2, page)
    page.wait_for_timeout(300)
    return app


def screen_xy(page: Page, app: ExplorerApp, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of the data point ``(x, y)`` on the map."""
    js = """([id, x, y]) => {
        const v = Bokeh.index.query_one((w) => w.model.id == id);
        const r = v.canvas_view.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
    }"""
    sx, sy = page.evaluate(js, [app.map.figure.id, float(x), float(y)])
    return float(sx), float(sy)


def frame_box(
    page: Page, app: ExplorerApp, *, second: bool = False
) -> tuple[float, float, float, float]:
    """Page coordinates ``(left, top, width, height)`` of the map's (or, ``second``, the
    split view's second map's) plotting area."""
    return figure_box(page, (app.map2 if second else app.map).figure.id)


def figure_box(page: Page, figure_id: str) -> tuple[float, float, float, float]:
    """Page coordinates ``(left, top, width, height)`` of the plotting area of the Bokeh
    figure with model id ``figure_id``."""
    js = """(id) => {
        const v = Bokeh.index.query_one((w) => w.model.id == id);
        const r = v.canvas_view.el.getBoundingClientRect();
        const b = v.frame.bbox;
        return [r.left + b.left, r.top + b.top, b.width, b.height];
    }"""
    left, top, width, height = page.evaluate(js, figure_id)
    return float(left), float(top), float(width), float(height)


def drag_box(page: Page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag the map's box-select tool from page point (x0, y0) to (x1, y1)."""
    page.locator(".bk-tool-icon-box-select").first.click()
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()


def artifact(name: str) -> Path:
    """Where a screenshot goes (``test-artifacts/`` at the repository root)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@pytest.fixture(scope="session")
def served_digits(digits_store: Path) -> Iterator[Served]:
    """The app over the digits sample."""
    result, server = serve_store(digits_store)
    yield result
    server.stop()


def click_data(page: Page, figure_id: str, x: float, y: float) -> None:
    """Click the point ``(x, y)`` (data coordinates) of any Bokeh figure on the page
    (once the page shows it: a tab's figure is drawn only when the tab is opened)."""
    js = """([id, x, y]) => {
        const v = Bokeh.index.query_one((w) => w.model.id == id);
        if (v == null) { return null; }
        const r = v.canvas_view.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(x), r.top + v.frame.y_scale.compute(y)];
    }"""
    sx, sy = wait_until(lambda: page.evaluate(js, [figure_id, float(x), float(y)]), page)
    page.mouse.click(float(sx), float(sy))
