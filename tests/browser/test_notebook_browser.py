"""The app in a live JupyterLab: a real Jupyter server on 127.0.0.1, a real kernel (this
venv's Python) and Debian's Chromium. A box drawn with the mouse on the map is read back
as ``app.selection`` in the kernel; ``app.select`` in the kernel shows in the page.

The test talks to the kernel through the page's own kernel connection (JupyterLab's
``window.jupyterapp``, exposed by ``--LabApp.expose_app_in_browser``), so what it reads is
what the notebook's ``app`` holds.
"""

from __future__ import annotations

import ast
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from playwright.sync_api import Page

from explorer.store.reader import Store
from tests.browser.conftest import artifact, drag_box, figure_box, free_port, wait_until

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]

# Runs JavaScript-side: execute ``code`` in the notebook's kernel, then evaluate ``expr``
# there (a user expression: its repr comes back in the reply, not on the output stream).
KERNEL_EXEC = """async ([code, expr]) => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
    const future = kernel.requestExecute(
        {code: code, store_history: false, user_expressions: {out: expr}});
    const reply = (await future.done).content;
    if (reply.status !== "ok") { return {error: reply.ename + ": " + reply.evalue}; }
    const out = reply.user_expressions.out;
    if (out.status !== "ok") { return {error: out.ename + ": " + out.evalue}; }
    return {value: out.data["text/plain"]};
}"""

# Data coordinates of page point (sx, sy) on the figure with model id ``id``.
DATA_XY = """([id, sx, sy]) => {
    const v = Bokeh.index.query_one((w) => w.model.id == id);
    const r = v.canvas_view.el.getBoundingClientRect();
    return [v.frame.x_scale.invert(sx - r.left), v.frame.y_scale.invert(sy - r.top)];
}"""


@dataclass
class Lab:
    """A running JupyterLab: its URL, token and root folder."""

    url: str
    token: str
    root: Path


def _wait_for_server(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 (a free port, a token, no browser), its own config and root."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "root"
    root.mkdir()
    token, port = secrets.token_hex(16), free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        # No user kernelspecs: "python3" is this venv's ipykernel (its "python" is ours).
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        # This checkout's ``explorer`` in the kernel (which runs in the notebook's folder,
        # where "." would name nothing, and an editable install another checkout).
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "PYTHONWARNINGS": "ignore",
    }
    log = home / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--allow-root",
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups: no network at run time
    ]  # fmt: skip
    with log.open("wb") as out:
        # A session of its own: the kernels it starts are stopped with it.
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{url}/api/status?token={token}", proc, log)
        yield Lab(url, token, root)
    finally:
        proc.send_signal(signal.SIGINT)  # twice: Jupyter asks for confirmation after one
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Whatever it left behind (a kernel that would not stop) goes with its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def is_local(url: str, server: str) -> bool:
    """Whether a request the page makes stays on the Jupyter server (or in the page)."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    ours, asked = urllib.parse.urlsplit(server), urllib.parse.urlsplit(url)
    return (asked.hostname, asked.port) == (ours.hostname, ours.port)


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def kernel(page: Page, expr: str, code: str = "") -> Any:
    """Run ``code`` in the open notebook's kernel, then return the value of ``expr`` there
    (a Python literal: a number, a string, a list...)."""
    reply = page.evaluate(KERNEL_EXEC, [code, expr])
    assert "error" not in reply, reply["error"]
    return ast.literal_eval(reply["value"])


def open_notebook(page: Page, lab: Lab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        ".connectionStatus === 'connected'",
        timeout=60_000,
    )


def shown_frame(page: Page, figure_id: str) -> str:
    """The map picture's data URI as the browser holds it (its image source's ``url``)."""
    js = """(id) => {
        const v = Bokeh.index.query_one((w) => w.model.id == id);
        const r = v.model.renderers.find((r) => r.glyph.type == "ImageURL");
        return r.data_source.data.url[0];
    }"""
    url: str = page.evaluate(js, figure_id)
    return url


def frame_reaches_the_page(page: Page, figure_id: str) -> None:
    """Wait until the page shows the map picture the kernel drew last."""
    latest = "app.map._map.image.data['url'][0]"
    wait_until(lambda: shown_frame(page, figure_id) == kernel(page, latest), page, 10)


def rows_in(coords: np.ndarray, box: tuple[float, float, float, float]) -> set[int]:
    x0, x1, y0, y1 = box
    inside = (coords[:, 0] >= x0) & (coords[:, 0] <= x1)
    inside &= (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
    return set(np.flatnonzero(inside).tolist())


def test_box_on_the_map_is_app_selection_in_the_kernel(
    page: Page, lab: Lab, tiny_store: Path
) -> None:
    write_notebook(
        lab.root / "live.ipynb",
        [
            "import explorer\n"
            f"app = explorer.show({str(tiny_store)!r})\n"
            "seen = []\n"
            "stop = app.on_select(lambda df: seen.append(df['pid'].tolist()))\n"
            "app",
        ],
    )
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
    # Every request goes to the Jupyter server: no script, stylesheet, font or image from
    # a CDN (no network at run time, and no third party told of a visit).
    outside: list[str] = []
    page.on("request", lambda r: None if is_local(r.url, lab.url) else outside.append(r.url))
    # The test machine is offline too: a request that leaves fails at once, not on a timeout.
    page.route("**/*", lambda route: route.continue_() if is_local(route.request.url, lab.url)
               else route.abort())  # fmt: skip
    open_notebook(page, lab, "live.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        page.wait_for_selector(".bk-Canvas", timeout=30_000)
    except Exception as exc:
        page.screenshot(path=str(artifact("notebook-no-map.png")))
        msg = "no map in the notebook; the page said:\n" + "\n".join(errors + outside)
        raise AssertionError(msg) from exc
    assert Path(kernel(page, "explorer.__file__")).is_relative_to(REPO)  # the code under test
    figure_id = kernel(page, "app.map.figure.id")
    # The first frame is drawn at a guessed size; the next follows the browser's ranges.
    wait_until(lambda: kernel(page, "app.map.frames_drawn") >= 2, page, 30)
    page.wait_for_timeout(300)

    left, top, width, height = figure_box(page, figure_id)
    sx0, sy0 = left + 0.1 * width, top + 0.1 * height
    sx1, sy1 = left + 0.65 * width, top + 0.75 * height
    drag_box(page, sx0, sy0, sx1, sy1)
    n = wait_until(lambda: kernel(page, "app.state.n_selected"), page, 20)
    # Every pane follows (the sidebar's count), and the kernel raised nothing doing so.
    page.get_by_text(f"{n:,} of 600 points selected").wait_for(timeout=15_000)
    assert errors == [], errors
    page.screenshot(path=str(artifact("notebook-box-selection.png")))

    read = kernel(page, "app.selection['pid'].tolist()")
    rows = [int(p[1:]) for p in read]  # the tiny store's ids are p000..p599, row order
    assert len(rows) == n
    assert kernel(page, "app.state.selection_source") == "map"
    # The rows inside the box (1 px either way: the browser rounds positions to pixels).
    coords = np.asarray(Store(tiny_store).layout("umap"))
    (ax0, ay0), (ax1, ay1) = (page.evaluate(DATA_XY, [figure_id, x, y]) for x, y in
                              [(sx0 + 1, sy1 - 1), (sx1 - 1, sy0 + 1)])  # fmt: skip
    (bx0, by0), (bx1, by1) = (page.evaluate(DATA_XY, [figure_id, x, y]) for x, y in
                              [(sx0 - 1, sy1 + 1), (sx1 + 1, sy0 - 1)])  # fmt: skip
    surely, maybe = rows_in(coords, (ax0, ax1, ay0, ay1)), rows_in(coords, (bx0, bx1, by0, by1))
    assert 0 < len(surely) < 600
    assert surely <= set(rows) <= maybe
    # on_select saw the box's selection, as a DataFrame of those rows.
    assert wait_until(lambda: kernel(page, "seen[-1:]"), page, 10) == [read]

    # And the other way: a selection made in the kernel shows in the page.
    assert kernel(page, "app.select(ids=['p001', 'p002', 'p003'])") == 3
    page.get_by_text("3 of 600 points selected").wait_for(timeout=15_000)
    assert kernel(page, "seen[-1:]") == [["p001", "p002", "p003"]]
    frame_reaches_the_page(page, figure_id)
    # A colour set from Python: the legend and the map's picture follow.
    assert kernel(page, "app.color_by", code="app.color_by = 'size'") == "size"
    page.get_by_text("size: ", exact=False).first.wait_for(timeout=15_000)
    frame_reaches_the_page(page, figure_id)
    page.screenshot(path=str(artifact("notebook-from-python.png")))
    assert outside == [], f"{len(outside)} requests left the Jupyter server: {sorted(set(outside))}"
