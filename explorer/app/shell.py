"""The app's layout and its factory.

``build_app(store)`` makes a new ``ExplorerState`` and new panes (one session) over the
process's shared ``StoreResources`` (``explorer.app.server`` serves one per browser tab).
``show(path)`` returns the same app for a notebook, where
``app.selection``, ``app.select(...)``, ``app.color_by`` and ``app.on_select(fn)`` read and
drive it from Python (see docs/notebook.ipynb).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from numpy.typing import ArrayLike, NDArray
from panel.viewable import Viewer
from param.parameters import NoNone

from explorer.app import markup
from explorer.app.pane import PaneSpec
from explorer.app.panes.scatter import MapPane
from explorer.app.process import open_resources
from explorer.app.refs import select_ref
from explorer.app.registry import available_panes
from explorer.app.resources import StoreResources
from explorer.app.state import ExplorerState
from explorer.app.urlstate import bind_location
from explorer.errors import InputError

log = logging.getLogger(__name__)
ACCENT = "#4c78a8"
SIDEBAR_WIDTH = 330
TABS_MIN_WIDTH = 440  # the analytic tabs share the width with the map, within these bounds
TABS_MAX_WIDTH = 900
# Bokeh gives every stretching child of a row the same share ("1 0 0px"), so the map, which
# also holds its legend, got less width than the tabs (a 370 px canvas beside 520 px of tabs
# at 1400 px). Growing the tabs at 2/3 of the map's rate gives the map's column 60% of it.
TABS_FLEX = "0.67 1 0px"
# Bokeh scrolls the tab headers sideways, without a scrollbar: at 1400 px the last tabs
# were out of sight and out of reach. A second row of tabs keeps every one clickable.
TABS_WRAP = ".bk-headers-wrapper { flex-wrap: wrap; }"
MIN_MAP_HEIGHT = 460


def _notify(kind: str, message: str) -> None:
    if pn.state.notifications is not None:
        getattr(pn.state.notifications, kind)(markup.esc(message), duration=8000)


class ExplorerApp(Viewer):
    """One session of the explorer: its state and its panes, laid out (no logic of its own).

    The panes come from ``explorer.app.registry``: each one the store can feed is built
    from ``(resources, state)`` and placed in its region.
    """

    state = param.ClassSelector(class_=ExplorerState, allow_None=NoNone, constant=True)

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        if "state" not in params:
            params["state"] = ExplorerState(
                n_points=resources.n_points,
                layouts=resources.store.layouts,
                color_options=resources.color_options,
                color_by=resources.default_color(),
                mask_for=resources.mask,
            )
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.resources = resources
        self.specs: list[PaneSpec] = available_panes(resources)
        self.panes: dict[str, Viewer] = {
            spec.name: spec.make(resources, self.state) for spec in self.specs
        }
        self._plain: pn.Column | None = None
        # What a link asked for that this store does not have: said on the page, not hidden.
        self.notices = pn.pane.Alert("", alert_type="warning", visible=False,  # type: ignore[no-untyped-call]
                                     sizing_mode="stretch_width", margin=(0, 10))  # fmt: skip

    def notice(self, message: str) -> None:
        """Show a warning above the map (escaped) and as a notification."""
        line = markup.esc(message)
        self.notices.object = f"{self.notices.object}<br>{line}" if self.notices.object else line
        self.notices.visible = True
        _notify("warning", message)

    # -- the panes -------------------------------------------------------------------
    def pane(self, name: str) -> Any:
        """The pane registered as ``name`` (KeyError when the store cannot feed it)."""
        return self.panes[name]

    @property
    def map(self) -> MapPane:
        """The map pane."""
        pane = self.panes["map"]
        assert isinstance(pane, MapPane)
        return pane

    @property
    def map2(self) -> MapPane:
        """The split view's second map."""
        pane = self.panes["map2"]
        assert isinstance(pane, MapPane)
        return pane

    def _region(self, region: str) -> list[PaneSpec]:
        return [spec for spec in self.specs if spec.region == region]

    def _sidebar(self) -> list[Any]:
        items: list[Any] = []
        for spec in self._region("sidebar") + self._region("aside"):
            if items:
                items.append(pn.layout.Divider())  # type: ignore[no-untyped-call]
            if spec.name == "export":  # the other panes' widgets carry their own labels
                items.append(markup.html_pane(f"<b>{markup.esc(spec.title)}</b>", margin=(0, 10)))
            items.append(self.panes[spec.name])
        return items

    def _main(self, *, stacked: bool = False) -> list[Any]:
        """The map(s) with the analytic tabs beside them, or below them when ``stacked``
        (a notebook cell is too narrow for the map, the sidebar and the tabs in a row)."""
        size: dict[str, Any] = (
            {"sizing_mode": "stretch_width", "height": MIN_MAP_HEIGHT} if stacked else
            {"sizing_mode": "stretch_both", "min_width": TABS_MIN_WIDTH,
             "max_width": TABS_MAX_WIDTH, "min_height": MIN_MAP_HEIGHT,
             "styles": {"flex": TABS_FLEX}, "stylesheets": [TABS_WRAP]}
        )  # fmt: skip
        # dynamic: only the open tab is sent to the browser (the others when opened): the
        # page's first document was half tabs nobody had looked at yet.
        tabs = pn.Tabs(  # type: ignore[no-untyped-call]
            *[(spec.title, self.panes[spec.name]) for spec in self._region("tabs")],
            dynamic=True, **size,
        )  # fmt: skip
        self.tabs = tabs
        # The split view takes the analytic tabs' room: two maps need the width.
        tabs.visible = stacked or not self.state.split
        if not stacked:
            self.state.param.watch(lambda e: setattr(tabs, "visible", not e.new), ["split"])
        maps = [self.panes[spec.name] for spec in self._region("map")]
        below = [self.panes[spec.name] for spec in self._region("below")]
        if stacked:
            row = pn.Row(*maps, sizing_mode="stretch_width", height=MIN_MAP_HEIGHT + 60)
            return [self.notices, row, tabs, *below]
        row = pn.Row(*maps, tabs, sizing_mode="stretch_both", min_height=MIN_MAP_HEIGHT)
        return [self.notices, row, *below]

    def show_tab(self, name: str) -> None:
        """Bring the tab of pane ``name`` to the front."""
        titles = [spec.name for spec in self._region("tabs")]
        self.tabs.active = titles.index(name)

    @property
    def title(self) -> str:
        """The page title: the store's name and size."""
        store = self.resources.store
        return f"explorer · {store.path.name} · {store.n_points:,} points"

    # -- from Python (a notebook) ---------------------------------------------------------
    @property
    def selection(self) -> pd.DataFrame:
        """The selected points' ids and metadata, as a DataFrame (rows in table order)."""
        return self.resources.subset(self.state.selection)

    def select(
        self, rows: ArrayLike | None = None, *, ids: ArrayLike | None = None, mode: str = "replace"
    ) -> int:
        """Select points from Python; returns how many are selected now.

        rows : row numbers (ints, as in ``app.state.selection``) or an (n,) bool mask.
        ids : values of the id column instead (``app.resources.id_column``).
        mode : "replace", "add" or "subtract". Rows the filters hide are dropped.
        """
        if (rows is None) == (ids is None):
            msg = "select() takes row numbers or a mask, or ids=[...]: give exactly one"
            raise InputError(msg)
        picked = self._rows_of_ids(ids) if ids is not None else self._rows_of(rows)  # type: ignore[arg-type]
        try:
            self.state.select(picked, source="python", mode=mode)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        self._push()
        return self.state.n_selected

    def _rows_of(self, rows: ArrayLike) -> NDArray[np.int64]:
        array = np.asarray(rows)
        if array.dtype == bool:
            if array.shape != (self.state.n_points,):
                msg = f"a mask must have shape ({self.state.n_points},), not {array.shape}"
                raise InputError(msg)
            return np.flatnonzero(array).astype(np.int64)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            msg = f"rows must be integer row numbers or a bool mask, not {array.dtype}; ids=..."
            raise InputError(msg)
        return array.astype(np.int64).ravel()

    def _rows_of_ids(self, ids: ArrayLike) -> NDArray[np.int64]:
        column = self.resources.id_column
        wanted = pd.Index(np.asarray(ids, dtype=object).ravel())
        found = self.resources.rows_of_ids(list(wanted))  # on a cluster: the workers
        if (found < 0).any():
            missing = wanted[found < 0]
            msg = f"{len(missing)} ids are not in column {column!r}, e.g. {missing[0]!r}"
            raise InputError(msg)
        rows: NDArray[np.int64] = np.asarray(found, dtype=np.int64)
        return rows

    @property
    def color_by(self) -> str:
        """The column or score the map is coloured by ('' = point density); settable."""
        return str(self.state.color_by)

    @color_by.setter
    def color_by(self, column: str) -> None:
        options = self.state.param["color_by"].objects
        if column not in options:
            names = ", ".join(repr(c) for c in options)
            msg = f"cannot colour by {column!r}: choose one of {names}"
            raise InputError(msg)
        self.state.color_by = column
        self._push()

    def on_select(self, callback: Callable[[pd.DataFrame], None]) -> Callable[[], None]:
        """Call ``callback(app.selection)`` after each change of selection (browser or Python).

        Returns a function that stops the calls.
        """

        def changed(_: param.parameterized.Event) -> None:
            try:
                callback(self.selection)
            except Exception:  # a user's callback must not stop the app's own updates
                log.exception("the on_select callback raised")

        watcher = self.state.param.watch(changed, ["selection"])
        return lambda: self.state.param.unwatch(watcher)

    def _push(self) -> None:
        """Send Bokeh changes made from the kernel to a notebook's browser.

        Panel pushes its own panes' changes over the comm, but not a raw Bokeh model's
        (the map's image): ``push_notebook`` sends whatever the document holds.
        """
        if self._plain is not None and self._plain._models:
            pn.io.push_notebook(self._plain)  # type: ignore[no-untyped-call]

    def link_url(self) -> None:
        """Keep the view in the browser's URL (when served with a location)."""
        location = pn.state.location
        if location is None:
            return
        self.location = location
        bind_location(
            self.state,
            location,
            on_problem=lambda msg: self.notice(f"Link: {msg}"),
            select=self.select_ref,
        )

    def select_ref(self, ref: str) -> int:
        """Select what a reference names (``slice:NAME``, ``node:3``...); see explorer.app.refs."""
        return select_ref(self.state, self.resources, ref, origin="link", mode="replace")

    def template(self) -> pn.template.BootstrapTemplate:
        """The app in a page template (for serving).

        Bootstrap rather than Fast: the Fast design fetches a font from Google on every page
        load, which a server without internet access (or a careful team) does not want.
        """
        # The sidebar as one item: the template adds each item as a document root, and
        # Bokeh walks every model of the document again for each root (18 roots, 566
        # models: 1.7-2.3 s of the first page; 9 roots: 0.3-0.6 s, on a 1M store).
        return pn.template.BootstrapTemplate(  # type: ignore[no-untyped-call]
            title=self.title,
            sidebar=[pn.Column(*self._sidebar(), sizing_mode="stretch_width")],
            main=self._main(),  # three items (in one Column the map lost its width)
            sidebar_width=SIDEBAR_WIDTH,
            header_background=ACCENT,
        )

    def __panel__(self) -> pn.viewable.Viewable:
        """The app without a page template (notebooks)."""
        if self._plain is None:
            sidebar = pn.Column(*self._sidebar(), width=SIDEBAR_WIDTH)
            header = markup.html_pane(f"<h3>{markup.esc(self.title)}</h3>", margin=(0, 10))
            self._plain = pn.Column(
                header,
                pn.Row(sidebar, pn.Column(*self._main(stacked=True),
                                          sizing_mode="stretch_width")),
                sizing_mode="stretch_width",
            )  # fmt: skip
        return self._plain


def build_app(store: str | Path | StoreResources) -> ExplorerApp:
    """A new session (state and panes) over the process's shared store resources."""
    resources = store if isinstance(store, StoreResources) else open_resources(store)
    layouts = resources.store.layouts
    # The first layout's index builds in a thread while the colour column loads. (The
    # whole table, for hover and export, is read by the server's warm-up once the first
    # image is shown, or by ``show`` in a notebook.)
    resources.prefetch(layouts[0] if layouts else None)
    return ExplorerApp(resources)
