"""Saved selections: the app's only write into a store.

Each selection is its own ``.npz`` file holding its sorted row indices and the
fingerprint of the data they were made on (``format.data_id``): after a rebuild from other
input the rows would name other points, so such a selection is refused, not read. A save
holds the store's writer lock, refuses to replace an existing name unless asked, and
writes through a temporary file and ``os.replace``; a reader opens the file once and reads
from that handle, so a concurrent save is never read half old, half new.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from explorer.errors import (
    SelectionExistsError,
    StaleSelectionError,
    StoreCorruptError,
    StoreError,
)
from explorer.store.atomic import write_bytes_atomic
from explorer.store.format import (
    MANIFEST,
    SELECTIONS_DIR,
    check_selection_name,
    data_id,
    selection_file,
)
from explorer.store.lock import store_lock

# A save waits this long for another writer (another save takes milliseconds; a build
# holds the lock for its whole run and is reported instead).
LOCK_WAIT_SECONDS = 5.0


def _current_data_id(store: Path) -> tuple[str, int]:
    import json

    try:
        manifest: Any = json.loads((store / MANIFEST).read_text(encoding="utf-8"))
        n_points = int(manifest["n_points"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{store} has no readable {MANIFEST} (a build is running or failed); try later"
        raise StoreError(msg) from exc
    return data_id(manifest), n_points


def save_selection(
    store: Path,
    name: str,
    rows: NDArray[np.integer],
    n_points: int,
    *,
    overwrite: bool = False,
    made_on: str | None = None,
) -> str:
    """Save ``rows`` under ``name`` in the store; return the cleaned name.

    overwrite : replace an existing selection of that name (else SelectionExistsError).
    made_on   : the ``data_id`` of the store the rows were chosen in (refused when the
                store has since been rebuilt from other input).
    """
    try:
        clean = check_selection_name(name)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    arr = np.unique(np.asarray(rows, dtype=np.int64))
    if arr.size and (arr[0] < 0 or arr[-1] >= n_points):
        msg = f"selection {clean!r} holds rows outside 0..{n_points - 1}"
        raise StoreError(msg)
    with store_lock(store, f"saving selection {clean!r}", wait=LOCK_WAIT_SECONDS):
        current, current_n = _current_data_id(store)
        if (made_on is not None and made_on != current) or current_n != n_points:
            msg = (
                f"the store {store} was rebuilt from other data since these points were "
                f"selected; reopen it and select again (nothing saved as {clean!r})"
            )
            raise StaleSelectionError(msg)
        final = store / selection_file(clean)
        if final.exists() and not overwrite:
            msg = f"a selection named {clean!r} exists already; choose another name or replace it"
            raise SelectionExistsError(msg)
        (store / SELECTIONS_DIR).mkdir(exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, rows=arr, data_id=np.array(current))
        write_bytes_atomic(final, buf.getvalue())
    return clean


def read_selection_file(
    path: Path, expected_data_id: str, n_points: int, *, rows: bool = True
) -> NDArray[np.int64]:
    """A saved selection's rows, read through one open handle and checked against the store.

    rows : False checks only that the file is a selection of this data (a listing reads
           no rows) and returns an empty array.
    """
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as saved:
            made_on = str(saved["data_id"])
            has_rows = "rows" in saved.files
            values = np.asarray(saved["rows"]) if rows and has_rows else np.zeros(0, np.int64)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        msg = f"{path} is not a readable saved selection ({type(exc).__name__}); delete it"
        raise StoreCorruptError(msg) from exc
    if not has_rows:
        msg = f"{path} is not a readable saved selection (no rows); delete it"
        raise StoreCorruptError(msg)
    if made_on != expected_data_id:
        msg = (
            f"{path} was saved on other data (the store was rebuilt from another input "
            "since), so its rows would name other points; delete it and select again"
        )
        raise StaleSelectionError(msg)
    if (
        values.ndim != 1
        or values.dtype != np.int64
        or (values.size and (values.min() < 0 or values.max() >= n_points))
    ):
        msg = f"{path} does not hold row indices of this store; delete it"
        raise StoreCorruptError(msg)
    return values
