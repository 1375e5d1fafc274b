"""Saved selections: the app's only write into a store.

Each selection is its own file, written through a temporary file and ``os.replace``, so
two sessions saving at once never lose or mix anything (the same name: the later wins
whole).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from explorer.errors import StoreError
from explorer.store.atomic import write_bytes_atomic
from explorer.store.format import SELECTIONS_DIR, check_selection_name, selection_file


def save_selection(store: Path, name: str, rows: NDArray[np.integer], n_points: int) -> str:
    """Save ``rows`` under ``name`` in the store; return the cleaned name."""
    try:
        clean = check_selection_name(name)
    except ValueError as exc:
        raise StoreError(str(exc)) from exc
    arr = np.unique(np.asarray(rows, dtype=np.int64))
    if arr.size and (arr[0] < 0 or arr[-1] >= n_points):
        msg = f"selection {clean!r} holds rows outside 0..{n_points - 1}"
        raise StoreError(msg)
    (store / SELECTIONS_DIR).mkdir(exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    write_bytes_atomic(store / selection_file(clean), buf.getvalue())
    return clean
