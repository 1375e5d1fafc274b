"""The app's server: one session per browser tab over one process's store resources.

``serve`` hands ``pn.serve`` a function, so every browser tab gets its own state and panes
(``build_app``) over the store opened once per server process. A spare session is built
ahead so a visitor's page does not wait for its panes; the login and closed routes are
``explorer.app.serving``'s.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn
import panel.io.resources as panel_resources
from bokeh.settings import settings as bokeh_settings

from explorer.app import markup
from explorer.app.background import wait_for_quiet
from explorer.app.process import (
    attach_cluster,
    check_dask_options,
    open_resources,
    prepare_first_page,
    start_warm_up,
)
from explorer.app.resources import StoreResources
from explorer.app.serving import server_options
from explorer.app.shell import ExplorerApp, build_app


class SpareSession:
    """One session built ahead, so a visitor's page does not wait for its panes.

    Building a session (the panes, their first map frame) took 0.35-0.6 s of a 10M-point
    store's first page (benchmarks/browser.py). The first spare is built before the server
    listens (``prepare_first_page``); each one taken is replaced in a background thread
    once the map is quiet (``wait_for_quiet``), never beside a frame being drawn.
    """

    def __init__(self, resources: StoreResources) -> None:
        self._resources = resources
        self._lock = threading.Lock()
        self._app: ExplorerApp | None = None
        self._refilling = False  # one refill at a time, however many visitors arrive

    def fill(self) -> None:
        """Build the spare now (if there is none)."""
        if self._app is not None:
            return
        app = build_app(self._resources)
        with self._lock:
            if self._app is None:
                self._app = app

    def take(self) -> ExplorerApp:
        """The spare (or a session built now if there is none); a new spare follows."""
        with self._lock:
            app, self._app = self._app, None
            refill, self._refilling = not self._refilling, True
        if app is None:
            app = build_app(self._resources)
        if refill:
            threading.Thread(target=self._refill, name="explorer-spare", daemon=True).start()
        return app

    def _refill(self) -> None:
        try:
            wait_for_quiet()
            self.fill()
        finally:
            with self._lock:
                self._refilling = False


_spares: dict[int, SpareSession] = {}
_spares_lock = threading.Lock()


def spare_session(resources: StoreResources) -> SpareSession:
    """The process's spare session over ``resources`` (one per store)."""
    with _spares_lock:
        return _spares.setdefault(id(resources), SpareSession(resources))


def session_factory(
    store: str | Path,
    on_app: Callable[[ExplorerApp], None] | None = None,
    dask: str | None = None,
) -> Callable[[], pn.template.BootstrapTemplate]:
    """The function ``pn.serve`` calls once per browser session.

    on_app : called with each new app (tests record them to drive the state).
    dask : a Dask scheduler's address or ``local:N``: the points live on that cluster.
    """
    resources = open_resources(store)
    if dask is not None:
        attach_cluster(resources, dask)
    spare = spare_session(resources)
    prepare_first_page(resources, lambda _: spare.fill())
    start_warm_up(resources)

    def session() -> pn.template.BootstrapTemplate:
        app = spare.take()
        app.link_url()
        if on_app is not None:
            on_app(app)
        return app.template()

    return session


def default_origins(address: str, port: int) -> list[str]:
    """Host names a browser may use to reach ``address:port`` (Bokeh refuses the others).

    On a wildcard address (``0.0.0.0``, ``::``) teammates use this machine's name.
    """
    names = {"localhost", "127.0.0.1"}
    if address in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname(), socket.getfqdn()}
    else:
        names.add(address)
    return sorted(f"{name}:{port}" for name in names)


def _no_mathjax(roots: Any) -> bool:
    return False


def serve(
    store: str | Path,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = True,
    websocket_origin: list[str] | None = None,
    num_procs: int = 1,
    basic_auth: str | dict[str, str] | None = None,
    cookie_secret: str | None = None,
    threaded: bool = False,
    on_app: Callable[[ExplorerApp], None] | None = None,
    dask: str | None = None,
) -> Any:
    """Serve the app on ``address:port``; returns Panel's server (or thread if threaded).

    The store is opened in each server process, read-only, and shared by its sessions.
    dask : a Dask scheduler's address or ``local:N`` (see ``explorer.app.cluster``).
    """
    check_dask_options(dask, num_procs)
    # Tabulator named here: the tabs are dynamic, so the slice table is not in the first
    # page's document, and Panel would not know to load its JavaScript.
    pn.extension("tabulator", notifications=True)
    pn.config.notifications = True
    # No MathJax in the page (1.8 MB of JavaScript, the largest file of the first page):
    # Panel adds it whenever an HTML pane is present, but ours all have math disabled.
    panel_resources._panel_use_mathjax = _no_mathjax
    markup.use_live_html(True)
    # Every script and stylesheet from our own server, never a CDN (even with
    # BOKEH_RESOURCES=cdn set): the page works offline and tells no third party of a visit.
    bokeh_settings.resources.set_value("server")
    origins = websocket_origin or default_origins(address, port)
    # With several processes the store is opened after the fork, in each process.
    factory: Any
    if num_procs > 1:

        def factory() -> pn.template.BootstrapTemplate:
            return session_factory(store, on_app)()

    else:
        factory = session_factory(store, on_app, dask)
    # Our login (checked credentials, constant-time, throttled) and no /components route.
    kwargs: dict[str, Any] = server_options(basic_auth, cookie_secret)
    if num_procs > 1:
        kwargs["num_procs"] = num_procs
    return pn.serve(  # type: ignore[no-untyped-call]
        factory,
        port=port,
        address=address,
        websocket_origin=origins,
        show=show,
        threaded=threaded,
        title=f"explorer · {Path(store).name}",
        verbose=False,
        **kwargs,
    )
