"""Export a subset of a store's points (ids and metadata, optionally coords and vectors).

Pure with respect to the store: reads it, returns bytes or writes one file atomically.
Used by ``explorer export`` and by the app's download button. A store built from an AnnData
``.h5ad`` file can also be exported as ``.h5ad`` (``h5ad_bytes``), for scanpy.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.errors import ExplorerError, InputError
from explorer.store.atomic import write_bytes_atomic
from explorer.store.reader import Store

FORMATS = ("parquet", "csv", "jsonl", "h5ad")
"""Every export format; ``h5ad`` only for stores built from .h5ad (``formats_for``)."""


def subset_table(
    store: Store,
    rows: NDArray[np.int64],
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
    points: pa.Table | None = None,
) -> pd.DataFrame:
    """The point table restricted to ``rows`` (sorted int64), plus optional columns.

    Taken from Arrow (``points``, when the caller holds the table already, else read from
    the store), so an export never converts the whole table to pandas. Coordinates become
    ``<layout>_x`` / ``<layout>_y``; vectors a list column ``vector``.
    """
    if points is None:
        points = pq.read_table(store.table_path("validate", "points"))
    table: pd.DataFrame = points.take(pa.array(np.asarray(rows, np.int64))).to_pandas()
    for name in layouts:
        coords = np.asarray(store.layout(name)[rows])
        table[f"{name}_x"] = coords[:, 0]
        table[f"{name}_y"] = coords[:, 1]
    if vectors:
        vec = np.asarray(store.vectors(reduced=False)[rows])
        table["vector"] = list(vec)
    return table


def table_bytes(table: pd.DataFrame, fmt: str) -> bytes:
    """Serialise a table as Parquet, CSV or JSON lines."""
    if fmt == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "csv":
        if "vector" in table.columns:
            table = table.assign(vector=[" ".join(f"{v:.7g}" for v in row) for row in table.vector])
        return table.to_csv(index=False).encode()
    if fmt == "jsonl":
        if "vector" in table.columns:
            table = table.assign(vector=[row.tolist() for row in table.vector])
        text: str = table.to_json(orient="records", lines=True, force_ascii=False) or ""
        return text.encode()
    msg = f"unknown export format {fmt!r}; use {', '.join(FORMATS)}"
    raise InputError(msg)


def rows_for_ids(store: Store, ids: list[str]) -> NDArray[np.int64]:
    """Row indices of the given ids (compared as text), sorted; unknown ids are an error."""
    id_col = store.roles.get("id") or store.points.columns[0]
    lookup = pd.Index(store.points[id_col].astype(str))
    positions = lookup.get_indexer(pd.Index(ids))
    if (positions < 0).any():
        bad = ids[int(np.flatnonzero(positions < 0)[0])]
        missing = int((positions < 0).sum())
        msg = f"id {bad!r} is not in the store ({missing} of {len(ids)} ids unknown)"
        raise InputError(msg)
    return np.unique(positions.astype(np.int64))


def read_id_file(path: Path) -> list[str]:
    """Ids from a text file (one per line), or the first column of a CSV/Parquet file."""
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.suffix.lower() == ".parquet":
        return [str(v) for v in pd.read_parquet(path).iloc[:, 0]]
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [line for line in lines if line]
    if path.suffix.lower() == ".csv" and ids:
        ids = ids[1:]  # header
    return ids


def export_rows(
    store: Store,
    rows: NDArray[np.int64],
    out: Path,
    fmt: str,
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
) -> int:
    """Write the subset to ``out`` atomically; return the number of rows written.

    ``h5ad`` writes every layout and the vectors whatever ``layouts`` and ``vectors`` say.
    """
    if fmt == "h5ad":
        write_bytes_atomic(out, h5ad_bytes(store, rows))
        return len(rows)
    data = table_bytes(subset_table(store, rows, layouts=layouts, vectors=vectors), fmt)
    write_bytes_atomic(out, data)
    return len(rows)


# -- AnnData ------------------------------------------------------------------------------


def formats_for(store: Store) -> tuple[str, ...]:
    """The export formats this store supports: ``h5ad`` only when built from an .h5ad."""
    if store.manifest.get("source", {}).get("format") == "h5ad":
        return FORMATS
    return tuple(f for f in FORMATS if f != "h5ad")


def anndata_subset(store: Store, rows: NDArray[np.int64]) -> Any:
    """The rows as an ``anndata.AnnData``: obs = point table, X = vectors, obsm = layouts.

    obs is indexed by the original ``obs_name`` (or the id column, as text); X holds the
    vectors the store was built from (``.X`` or the ``.obsm`` key given to the build);
    each layout is ``obsm['X_<layout>']`` (n, 2) float32, as scanpy names them.
    """
    source = store.manifest.get("source", {})
    if source.get("format") != "h5ad":
        msg = (
            f"store {store.path} was built from {source.get('format') or 'unknown'} input; "
            "only stores built from .h5ad export as .h5ad (use parquet, csv or jsonl)"
        )
        raise InputError(msg)
    try:
        import anndata
    except ImportError as exc:
        msg = "exporting .h5ad needs the anndata package (pip install anndata)"
        raise ExplorerError(msg) from exc
    rows = np.asarray(rows, dtype=np.int64)
    obs = subset_table(store, rows)
    key = "obs_name" if "obs_name" in obs.columns else (store.roles.get("id") or obs.columns[0])
    obs.index = pd.Index(obs[key].astype(str), name=None)
    if key == "obs_name":
        obs = obs.drop(columns=[key])
    for name in obs.columns:
        if obs[name].dtype == object or pd.api.types.is_string_dtype(obs[name].dtype):
            # nullable text: h5py cannot write a None inside an object column
            obs[name] = obs[name].astype("string")
    x = np.asarray(store.vectors(reduced=False)[rows], dtype=np.float32)
    obsm = {f"X_{name}": np.asarray(store.layout(name)[rows]) for name in store.layouts}
    # the file name only: an export shared with others should not carry local paths
    origin = Path(str(source.get("path", ""))).name
    uns = {"explorer": {"source": origin, "vectors": source.get("vectors") or "X"}}
    return anndata.AnnData(X=x, obs=obs, obsm=obsm, uns=uns)


def h5ad_bytes(store: Store, rows: NDArray[np.int64]) -> bytes:
    """The rows as an .h5ad file's bytes (see ``anndata_subset``)."""
    adata = anndata_subset(store, rows)
    with tempfile.TemporaryDirectory(prefix="explorer-h5ad-") as folder:
        path = Path(folder) / "selection.h5ad"
        adata.write_h5ad(path)  # h5py writes to a path; the bytes go out atomically
        return path.read_bytes()
