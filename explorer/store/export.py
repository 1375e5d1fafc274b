"""Export a subset of a store's points (ids and metadata, optionally coords and vectors).

Pure with respect to the store: reads it, returns bytes or writes one file atomically.
Used by ``explorer export`` and by the app's download button. A store built from an AnnData
``.h5ad`` file can also be exported as ``.h5ad`` (``h5ad_bytes``), for scanpy.
"""

from __future__ import annotations

import datetime as dt
import io
import json
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
    errors: bool = False,
    points: pa.Table | None = None,
) -> pd.DataFrame:
    """The point table restricted to ``rows`` (sorted int64), plus optional columns.

    Taken from Arrow (``points``, when the caller holds the table already, else read from
    the store), so an export never converts the whole table to pandas. Coordinates become
    ``<layout>_x`` / ``<layout>_y``; vectors a list column ``vector``; ``errors`` adds
    ``error`` (wrong / right / unknown, as the build decided) and ``loss`` with ``--loss``.
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
    if errors and store.has_errors:
        codes, loss = store.errors()
        table["error"] = np.array(["unknown", "right", "wrong"], dtype=object)[codes[rows] + 1]
        if loss is not None:
            table["loss"] = np.asarray(loss[rows])
    return table


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...),
# @SUM(...), +2+3, -2+3; tab and CR also start one in some programs). CSV text cells that
# do are written with a leading ' (OWASP's advice), unless --raw.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _safe_csv_table(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells and column names neutralised; numbers are left alone (-1.5 is a number)."""
    out = table.copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            out[column] = [neutralise(v) if isinstance(v, str) else v for v in values]
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def _json_value(value: Any) -> Any:
    """A cell as a JSON value: floats as Python floats (shortest exact repr), NaN as null."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def _jsonl(table: pd.DataFrame) -> str:
    columns = [str(c) for c in table.columns]
    lines = [
        json.dumps(
            dict(zip(columns, map(_json_value, row), strict=True)),
            ensure_ascii=False,
            default=str,  # anything else (bytes, Decimal) as its text, never a crash
        )
        for row in table.itertuples(index=False, name=None)
    ]
    return "".join(line + "\n" for line in lines)


def table_bytes(table: pd.DataFrame, fmt: str, *, raw: bool = False) -> bytes:
    """Serialise a table as Parquet, CSV or JSON lines.

    Floats round-trip exactly (shortest repr; float32 vectors as float32). CSV text cells
    that a spreadsheet would run as a formula get a leading ``'`` unless ``raw``.
    """
    if fmt == "parquet":
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        return buf.getvalue()
    if fmt == "csv":
        if not raw:  # before the vectors become text: "-1.5 2.0" is numbers, not a formula
            table = _safe_csv_table(table)
        if "vector" in table.columns:
            # str(np.float32) is the shortest text that reads back as the same float32.
            table = table.assign(vector=[" ".join(map(str, row)) for row in table.vector])
        # CRLF rows (RFC 4180): a cell holding a lone CR is then quoted, not split.
        return table.to_csv(index=False, lineterminator="\r\n").encode()
    if fmt == "jsonl":
        return _jsonl(table).encode()
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


def read_id_file(path: Path, id_column: str | None = None) -> list[str]:
    """Ids from a text file (one per line), or from a CSV/Parquet file's id column.

    A CSV or Parquet file with several columns must have one named ``id_column``; with a
    single column, that column is read whatever its name.
    """
    if not path.is_file():
        msg = f"{path}: no such file" if not path.exists() else f"{path} is not a file"
        raise InputError(msg)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _id_column(pd.read_parquet(path), path, id_column)
        if suffix == ".csv":
            return _id_column(pd.read_csv(path, dtype=str, keep_default_na=False), path, id_column)
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a UTF-8 text file of ids (one per line)"
        raise InputError(msg) from exc
    except (OSError, ValueError, pa.ArrowException) as exc:
        msg = f"{path} cannot be read as a list of ids ({type(exc).__name__}); check the file"
        raise InputError(msg) from exc
    if "\x00" in text:
        msg = f"{path} is not a text file of ids (it holds binary data)"
        raise InputError(msg)
    return [line.strip() for line in text.splitlines() if line.strip()]


def _id_column(table: pd.DataFrame, path: Path, id_column: str | None) -> list[str]:
    if id_column is not None and id_column in table.columns:
        values = table[id_column]
    elif table.shape[1] == 1:
        values = table.iloc[:, 0]
    else:
        have = ", ".join(map(str, table.columns[:8]))
        msg = (
            f"{path} has {table.shape[1]} columns ({have}) and none is the store's id "
            f"column {id_column!r}; give a file with that column, or one column of ids"
        )
        raise InputError(msg)
    return [str(v).strip() for v in values if str(v).strip()]


def check_out_path(out: Path) -> None:
    """Refuse, in one line, an output path that cannot be written (before any work)."""
    if out.is_dir():
        msg = f"--out {out} is a directory; give a file name, e.g. {out / 'export.parquet'}"
        raise InputError(msg)
    if not out.parent.is_dir():
        msg = f"--out {out}: the folder {out.parent} does not exist; create it first"
        raise InputError(msg)


def export_rows(
    store: Store,
    rows: NDArray[np.int64],
    out: Path,
    fmt: str,
    *,
    layouts: tuple[str, ...] = (),
    vectors: bool = False,
    errors: bool = False,
    raw: bool = False,
) -> int:
    """Write the subset to ``out`` atomically; return the number of rows written.

    ``h5ad`` writes every layout and the vectors whatever ``layouts`` and ``vectors`` say.
    """
    check_out_path(out)
    if fmt == "h5ad":
        data = h5ad_bytes(store, rows)
    else:
        table = subset_table(store, rows, layouts=layouts, vectors=vectors, errors=errors)
        data = table_bytes(table, fmt, raw=raw)
    try:
        write_bytes_atomic(out, data)
    except OSError as exc:
        msg = f"cannot write {out} ({exc.strerror}); check the folder's permissions and space"
        raise InputError(msg) from exc
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
