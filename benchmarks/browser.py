"""From the user's input to the new image on the screen, in real Chromium (issue 11).

    nice .venv/bin/python benchmarks/browser.py --sizes 1e6,1e7 [--steps 20] [--tmp DIR]

For each size, a synthetic partitioned store (``explorer.datasets.synth.write_scale_store``:
one layout, a 10-category label; written once under ``--tmp`` and reused) is served by
``explorer serve STORE --no-show`` in a process of its own, as a user runs it, and opened in
headless Debian Chromium (Playwright) as soon as the server listens. Then ``--steps`` inputs
on the map, alternating wheel zooms in and out and drags (pans), each at a random place of
the plot:

- **input → painted**: from the browser's ``wheel`` event (or a drag's last ``mousemove``,
  the one that moved the view last) to the paint of the image drawn for the view it made
  (the image source's new data, its PNG decoded, two animation frames later), measured in
  the page with ``performance.now()``;
- **input → image arrived**: to the moment the new image's data reached the page;
- **server frame**: the render + PNG time of that frame, as the map's status line says;
- **frames per input**: images that reached the page for one input (1 is ideal; a pan
  that moves the view several times may show its views on the way).

Also **first image**: from opening the page to the first frame painted, on a server that
has just started listening (its warm-up running beside the first session, as ``explorer
serve`` does), and **listening**: from starting the server to its port accepting.
Medians and p95 in milliseconds. The machine is shared and noisy: compare within one run.
(Until 2026-12-02 the server ran as a thread of this script, whose Playwright calls then
competed with it for the GIL; figures before that date are not comparable.)
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# Page-side probes: every input's time, and every new image's arrival and paint.
PROBE = """([sourceId]) => {
    window.__inputs = [];
    window.__paints = [];
    // The inputs that move the view: a wheel step, or a mouse move with a button held.
    for (const kind of ["wheel", "mousemove"]) {
        document.addEventListener(kind, (e) => {
            if (kind == "wheel" || e.buttons) { window.__inputs.push(performance.now()); }
        }, {capture: true});
    }
    const doc = Bokeh.documents[0];
    const src = doc.get_model_by_id(sourceId);
    src.properties.data.change.connect(() => {
        const arrived = performance.now();
        window.__arrivals = (window.__arrivals || 0) + 1;
        const d = src.data;
        const img = new Image();
        img.src = d.url[0];
        img.decode().catch(() => null).then(() => requestAnimationFrame(() =>
            requestAnimationFrame(() => window.__paints.push(
                {arrived, painted: performance.now(), x: d.x[0], w: d.w[0], y: d.y[0], h: d.h[0]}
            ))));
    });
    return true;
}"""

RANGES = """([figId]) => {
    const v = Bokeh.index.query_one((w) => w.model.id == figId);
    const r = v.canvas_view.el.getBoundingClientRect();
    const b = v.frame.bbox;
    const m = v.model;
    return [m.x_range.start, m.x_range.end, m.y_range.start, m.y_range.end,
            r.left + b.left, r.top + b.top, b.width, b.height];
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def scale_store(tmp: Path, n: int) -> Path:
    """The synthetic store of ``n`` points under ``tmp`` (written on first use)."""
    from explorer.datasets.synth import write_scale_store

    path = tmp / f"scale-{n}.store"
    if not (path / "manifest.json").exists():
        t0 = time.perf_counter()
        write_scale_store(path, n, seed=0)
        print(f"  wrote {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def wait_for(check: Any, page: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout} s"
            raise TimeoutError(msg)
        page.wait_for_timeout(10)


def matches(paint: dict[str, float], view: list[float]) -> bool:
    """Whether a painted image was drawn for the view ``(x0, x1, y0, y1)``."""
    x0, x1, y0, y1 = view[:4]
    tol = 1e-6 * max(abs(x1 - x0), abs(y1 - y0), 1e-12)
    ends = (paint["x"], paint["x"] + paint["w"], paint["y"], paint["y"] + paint["h"])
    return all(abs(a - b) <= tol for a, b in zip(ends, (x0, x1, y0, y1), strict=True))


# From the page's start: the first map image painted (its time in window.__first).
FIRST_PAINT = """(() => {
    const look = () => {
        const doc = window.Bokeh && Bokeh.documents.length ? Bokeh.documents[0] : null;
        const src = doc && [...doc.all_models].find((m) => m.data != null && "url" in m.data
                                                    && "w" in m.data && m.data.url[0]);
        if (src == null) { requestAnimationFrame(look); return; }
        const img = new Image();
        img.src = src.data.url[0];
        img.decode().catch(() => null).then(() => requestAnimationFrame(() =>
            requestAnimationFrame(() => { window.__first = performance.now(); })));
    };
    requestAnimationFrame(look);
})();"""

# The map's image source and figure: found in the page (the server is another process).
FIND_MAP = """() => {
    const doc = Bokeh.documents[0];
    const src = [...doc.all_models].find((m) => m.data != null && "url" in m.data
                                          && "w" in m.data && "h" in m.data);
    const fig = [...doc.all_models].find((m) => m.renderers != null && m.renderers.some(
        (r) => r.data_source === src));
    return src == null || fig == null ? null : [src.id, fig.id];
}"""
FRAME_MS = re.compile(r"frame (\d+) ms")


def status_frame_ms(page: Any) -> float:
    """The render + PNG time the map's status line gives for the frame shown."""
    text = page.get_by_text("points in view").first.inner_text()
    found = FRAME_MS.search(text)
    return float(found.group(1)) if found else float("nan")


def start_server(store: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "explorer", "serve", str(store), "--port", str(port),
           "--no-show"]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_size(store: Path, steps: int, seed: int, browser: Any) -> dict[str, Any]:
    port = free_port()
    t_start = time.perf_counter()
    server = start_server(store, port)
    try:
        wait_port(port, server)
        listening_s = time.perf_counter() - t_start
        return measure(port, steps, seed, browser) | {"listening_s": listening_s}
    finally:
        server.terminate()
        server.wait(30)


def measure(port: int, steps: int, seed: int, browser: Any) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    page.add_init_script(FIRST_PAINT)
    page.goto(f"http://localhost:{port}/")
    page.wait_for_selector(".bk-Canvas", timeout=120_000)
    ids = wait_for(lambda: page.evaluate(FIND_MAP), page, timeout=120)
    page.evaluate(PROBE, [ids[0]])
    # First image: navigation start (the page's time origin) to the first frame painted.
    first_image_s = wait_for(lambda: page.evaluate("window.__first"), page, timeout=120) / 1e3
    page.wait_for_timeout(1500)
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(steps):
        view = page.evaluate(RANGES, [ids[1]])
        left, top, width, height = view[4:]
        fx, fy = rng.uniform(0.3, 0.7, 2)
        x, y = left + fx * width, top + fy * height
        n_inputs = page.evaluate("window.__inputs.length")
        page.evaluate("window.__paints = []; window.__arrivals = 0")
        page.mouse.move(x, y)
        if step % 3 == 2:  # a pan: drag by a fifth of the plot
            page.mouse.down()
            page.mouse.move(x + width / 5, y + height / 8, steps=4)
            page.mouse.up()
        else:  # zoom in on even steps, out on odd ones (the view stays on the points)
            page.mouse.wheel(0, -240 if step % 2 == 0 else 200)
        target = page.evaluate(RANGES, [ids[1]])
        wait_for(lambda t=target: any(matches(p, t) for p in page.evaluate("window.__paints")),
                 page)  # fmt: skip
        # The input that made the view drawn: the wheel step, or a drag's last move.
        t_input = page.evaluate("window.__inputs")[-1]
        assert len(page.evaluate("window.__inputs")) > n_inputs, "the input never reached it"
        paints = page.evaluate("window.__paints")
        paint = next(p for p in paints if matches(p, target))
        page.wait_for_timeout(400)  # the status line follows the image
        rows.append((paint["painted"] - t_input, paint["arrived"] - t_input,
                     status_frame_ms(page), page.evaluate("window.__arrivals")))  # fmt: skip
    page.close()
    arr = np.asarray(rows, np.float64)
    return {"first_image_s": first_image_s, "painted": arr[:, 0], "arrived": arr[:, 1],
            "server": arr[:, 2], "frames": arr[:, 3]}  # fmt: skip


def wait_port(port: int, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None:
                err = server.stderr.read().decode(errors="replace") if server.stderr else ""
                msg = f"explorer serve exited: {err[-2000:]}"
                raise RuntimeError(msg) from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e6,1e7")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for n in sizes:
            store = scale_store(tmp, n)
            print(f"  {n:,} points: {args.steps} steps", flush=True)
            results[n] = run_size(store, args.steps, args.seed, browser)
        browser.close()
    print()
    print(f"`{' '.join(['python', *sys.argv])}`")
    print()
    print("| points | input → painted p50 | p95 | input → image arrived p50 | p95 "
          "| server frame p50 | p95 | frames per input | listening | first image |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, r in results.items():
        pa, ar, sv = r["painted"], r["arrived"], r["server"]
        print(f"| {n:,} | {np.median(pa):.0f} | {np.percentile(pa, 95):.0f} "
              f"| {np.median(ar):.0f} | {np.percentile(ar, 95):.0f} "
              f"| {np.median(sv):.0f} | {np.percentile(sv, 95):.0f} "
              f"| {np.median(r['frames']):.0f} | {r['listening_s']:.1f} s "
              f"| {r['first_image_s']:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
