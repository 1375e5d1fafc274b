"""Export and save: download the selection, save it into the store by name, load a saved one.

The download is built when the button is clicked (``FileDownload`` with a callback): the
rows come from the shared Arrow table (``StoreResources.subset``, the same columns as
``explorer export``) and are written by ``explorer.store.export.table_bytes``. A store built
from an AnnData ``.h5ad`` file also offers ``.h5ad`` (``formats_for``): obs = the point
table, X = the vectors, obsm = every layout, written by ``explorer.store.export.h5ad_bytes``,
for scanpy. Saving goes through
``explorer.store.selections.save_selection`` (validated name, atomic write); problems are
shown as notifications, never as tracebacks.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import panel as pn
import param

from explorer.app import markup
from explorer.app.background import in_worker
from explorer.app.exporter import export_bytes
from explorer.app.pane import PaneBase, PaneSpec
from explorer.app.refs import select_ref
from explorer.app.resources import StoreResources
from explorer.errors import ExplorerError, SelectionExistsError
from explorer.store.export import FORMATS, formats_for, table_bytes
from explorer.store.format import check_selection_name
from explorer.store.selections import save_selection

log = logging.getLogger(__name__)

FORMAT_LABELS = {"Parquet": "parquet", "CSV": "csv", "JSON lines": "jsonl", ".h5ad": "h5ad"}
WHOLE_FORMATS = ("h5ad",)
"""Formats that always hold every layout and the vectors (the two options do not apply)."""
NO_SAVED = "(no saved selections)"


def _notify(kind: str, message: str) -> None:
    """Show a notification when the app is served with notifications on."""
    notes = pn.state.notifications
    if notes is not None:
        getattr(notes, kind)(message, duration=6000 if kind != "error" else 10000)


class ExportPane(PaneBase):
    """Download the selection (Parquet/CSV/JSONL, or .h5ad), save it by name, load one."""

    last_message = param.String(default="", doc="the last success or error shown (for tests)")

    def __init__(self, resources: StoreResources, **params: Any) -> None:
        super().__init__(resources, **params)
        offered = formats_for(resources.store)
        self.format = pn.widgets.RadioButtonGroup(  # type: ignore[no-untyped-call]
            options={k: v for k, v in FORMAT_LABELS.items() if v in offered},
            value="parquet", sizing_mode="stretch_width",
        )  # fmt: skip
        self.with_coords = pn.widgets.Checkbox(label="include 2-D coordinates (every layout)")
        self.with_vectors = pn.widgets.Checkbox(label="include the vectors")
        self.download = pn.widgets.FileDownload(  # type: ignore[no-untyped-call]
            callback=self._export_file_async, filename="selection.parquet",
            label="Download selection",
            color="primary", sizing_mode="stretch_width", disabled=True,
        )  # fmt: skip
        self.format.param.watch(self._on_format, "value")
        self.name_input = pn.widgets.TextInput(
            label="Save selection as…", placeholder="a name, e.g. confused 3s",
            sizing_mode="stretch_width",
        )  # fmt: skip
        self.save_button = pn.widgets.Button(label="Save", disabled=True, width=80)  # type: ignore[no-untyped-call]
        self.save_button.on_click(self._on_save)
        self._confirm_replace: str | None = None  # a name the user was asked to replace
        self.saved = pn.widgets.Select(label="Saved selections", sizing_mode="stretch_width")  # type: ignore[no-untyped-call]
        self.load_button = pn.widgets.Button(label="Load", width=80)  # type: ignore[no-untyped-call]
        self.load_button.on_click(self._on_load)
        self.refresh_saved()
        self._panel = pn.Column(
            self.format,
            self.with_coords,
            self.with_vectors,
            self.download,
            pn.Row(self.name_input, self.save_button, sizing_mode="stretch_width"),
            pn.Row(self.saved, self.load_button, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self._on_selection()

    # -- download --------------------------------------------------------------------
    def export_bytes(self) -> bytes:
        """The selection as a file in the chosen format."""
        layouts = tuple(self._res.store.layouts) if self.with_coords.value else ()
        # On a cluster the rows are gathered from the workers (an .h5ad, which holds every
        # layout and the vectors, is still written from the store here).
        if self._res.cluster is not None and self.format.value != "h5ad":
            table = self._res.subset(
                self.state.selection, layouts=layouts, vectors=self.with_vectors.value
            )
            return table_bytes(table, self.format.value)
        return export_bytes(
            self._res.store, self.state.selection, self.format.value, layouts=layouts,
            vectors=self.with_vectors.value,
            points=self._res.table if self._res.cluster is None else None,
        )  # fmt: skip

    def export_file(self) -> io.BytesIO | None:
        """FileDownload's callback: the file, or None (and a notification) on failure."""
        try:
            data = self.export_bytes()
        except (ExplorerError, OSError, ValueError) as exc:
            self._report("error", f"Export failed: {exc}")
            return None
        self.last_message = f"exported {self.state.n_selected:,} points"
        return io.BytesIO(data)

    async def _export_file_async(self) -> io.BytesIO | None:
        """The download's callback: the file is built in a worker thread, so exporting a
        million rows does not stall the other sessions of this server."""
        return await in_worker(self.export_file)

    def _on_format(self, event: param.parameterized.Event) -> None:
        if event.new in FORMATS:
            self.download.filename = f"selection.{event.new}"
        whole = event.new in WHOLE_FORMATS  # .h5ad holds every layout and the vectors
        self.with_coords.disabled = self.with_vectors.disabled = whole

    @param.depends("state.selection", watch=True)
    def _on_selection(self) -> None:
        n = self.state.n_selected
        self.download.disabled = self.save_button.disabled = n == 0
        self.download.label = f"Download {n:,} selected points" if n else "Select points to export"
        self.refresh_saved(select=self.saved.value)

    # -- save and load ---------------------------------------------------------------
    def save(self, name: str, *, overwrite: bool = False) -> str | None:
        """Save the selection under ``name`` in the store; return the clean name or None.

        An existing name is replaced only with ``overwrite`` (the Save button asks first:
        pressing it again with the same name replaces).
        """
        if not self.state.n_selected:
            self._report("warning", "Nothing is selected: select points before saving.")
            return None
        try:
            clean = check_selection_name(name)
            saved = save_selection(
                self._res.store.path, clean, self.state.selection, self._res.n_points,
                overwrite=overwrite, made_on=self._res.store.data_id,
            )  # fmt: skip
        except SelectionExistsError:
            self._confirm_replace = clean
            self._report("warning", f"{clean!r} exists already: press Save again to replace it")
            return None
        except ValueError as exc:
            self._report("error", str(exc))
            return None
        except (ExplorerError, OSError) as exc:
            self._report("error", f"Could not save {name!r}: {exc}")
            return None
        self.refresh_saved(select=saved)
        self.state.selection_ref = f"saved:{saved}"
        self._report("success", f"Saved {self.state.n_selected:,} points as {saved!r}")
        return saved

    def load(self, name: str | None) -> bool:
        """Replace the selection by the saved selection ``name``."""
        if not name or name == NO_SAVED:
            return False
        try:
            select_ref(self.state, self._res, f"saved:{name}", origin="saved", mode="replace")
        except (ExplorerError, ValueError) as exc:
            self._report("error", f"Could not load {name!r}: {exc}")
            return False
        self._report("info", f"Loaded {name!r} ({self.state.n_selected:,} points)")
        return True

    def _on_save(self, _: object) -> None:
        name = self.name_input.value or ""
        again = self._confirm_replace is not None and name.strip() == self._confirm_replace
        self._confirm_replace = None
        self.save(name, overwrite=again)

    def _on_load(self, _: object) -> None:
        self.load(self.saved.value)

    def refresh_saved(self, select: str | None = None) -> None:
        """Re-read the store's saved selections (another session may have saved one)."""
        names = self._res.store.selections()
        self.saved.options = names or [NO_SAVED]
        if select in names:
            self.saved.value = select
        self.load_button.disabled = not names

    def _report(self, kind: str, message: str) -> None:
        self.last_message = message
        _notify(kind, markup.esc(message))


PANE = PaneSpec(
    name="export", title="Export & save", region="sidebar",
    make=lambda res, state: ExportPane(res, state=state),
)  # fmt: skip
