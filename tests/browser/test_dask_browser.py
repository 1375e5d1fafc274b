"""``explorer serve STORE --dask local:2`` in real Chromium: the command starts a 2-worker
LocalCluster, the map image arrives, a box selection counts its points, and Ctrl-C stops
the server and its cluster. Screenshot: ``test-artifacts/browser-dask-box.png``."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.browser.conftest import artifact, free_port

pytestmark = pytest.mark.browser

N_POINTS = "1,797"


@pytest.fixture(scope="module")
def dask_server(tmp_path_factory: pytest.TempPathFactory, digits_store: Path) -> Iterator[str]:
    """The CLI serving the digits store with ``--dask local:2``, in a session of its own."""
    port = free_port()
    log = tmp_path_factory.mktemp("dask-serve") / "serve.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ".") if p),
        "PYTHONWARNINGS": "ignore",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "explorer", "serve", str(digits_store), "--dask", "local:2",
               "--port", str(port), "--no-show"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=Path.cwd(), stdout=out, stderr=out,
                                start_new_session=True)  # fmt: skip
    url = f"http://localhost:{port}/"
    try:
        # The port opens once the cluster has started and holds the points; a GET would
        # build a whole session, so only connect.
        deadline = time.monotonic() + 180
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"explorer serve --dask did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            pytest.fail(f"Ctrl-C did not stop the server:\n{log.read_text()[-3000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_dask_map_and_box_selection(page: Page, dask_server: str) -> None:
    page.goto(dask_server, timeout=90_000)
    page.wait_for_selector(".bk-Canvas", timeout=60_000)
    page.get_by_text(re.compile(rf"{N_POINTS} points in view")).first.wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    png = page.locator(".bk-Canvas").first.screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    assert int((spread > 40).sum()) > 300, "the map image drawn on the cluster looks blank"
    canvas = page.locator(".bk-Canvas").first.bounding_box()
    assert canvas is not None
    page.locator(".bk-tool-icon-box-select").first.click()
    left, top = canvas["x"], canvas["y"]
    width, height = canvas["width"], canvas["height"]
    page.mouse.move(left + 0.15 * width, top + 0.15 * height)
    page.mouse.down()
    page.mouse.move(left + 0.6 * width, top + 0.7 * height, steps=8)
    page.mouse.up()
    selected = page.get_by_text(re.compile(rf"[1-9][\d,]* of {N_POINTS} points selected")).first
    selected.wait_for(timeout=60_000)
    n = int(re.search(r"([\d,]+) of", selected.inner_text()).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 0 < n < 1797
    # The highlighted frame comes back from the cluster with the same count.
    page.get_by_text(re.compile(rf"{n:,} highlighted")).first.wait_for(timeout=60_000)
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifact("browser-dask-box.png")))
