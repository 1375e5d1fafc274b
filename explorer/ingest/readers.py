"""Readers: a user file -> (vectors, metadata table), or an InputError naming the problem.

Formats: ``.npy`` (vectors only), Parquet (a list column, or all numeric columns), CSV
(numeric columns, or columns sharing a prefix), AnnData ``.h5ad`` (if ``anndata`` is
installed), and a Hugging Face ``datasets`` folder written by ``Dataset.save_to_disk`` (if
``datasets`` is installed; read from its Arrow files, nothing downloaded). Metadata may also
come from ``--meta FILE`` (CSV or Parquet, same row order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from explorer.errors import InputError
from explorer.ingest.dataset import InputSpec

RawInput = tuple[NDArray[np.floating] | None, pd.DataFrame, list[str]]
"""(vectors or None when they are columns of the table, the table, notes)"""


def _check_file(path: Path) -> None:
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.is_dir():
        msg = (
            f"{path} is a directory; give the vectors file inside it "
            "(or a folder written by datasets' save_to_disk)"
        )
        raise InputError(msg)
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        msg = f"{path}: cannot read it ({exc.strerror})"
        raise InputError(msg) from exc


def read_npy(path: Path) -> RawInput:
    """A 2-D numeric ``.npy`` array."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        msg = f"{path} is not a .npy array of numbers ({exc})"
        raise InputError(msg) from exc
    except (OSError, EOFError) as exc:
        msg = f"{path} is not a readable .npy file ({exc})"
        raise InputError(msg) from exc
    if arr.ndim != 2:
        msg = f"{path} holds an array of shape {arr.shape}; expected 2-D (points × dims)"
        raise InputError(msg)
    if arr.dtype.kind not in "fiub":
        msg = f"{path} holds {arr.dtype} values; expected numbers"
        raise InputError(msg)
    return arr, pd.DataFrame(index=pd.RangeIndex(arr.shape[0])), []


def _list_column_to_matrix(path: Path, col: pa.ChunkedArray, name: str) -> NDArray[np.floating]:
    arr = col.combine_chunks()
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and not (
        pa.types.is_fixed_size_list(arr.type)
    ):
        msg = f"{path}: column {name!r} is {arr.type}, not a list of numbers"
        raise InputError(msg)
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        msg = f"{path} row {row}, column {name!r}: the vector is missing (null)"
        raise InputError(msg)
    value_type = arr.type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        msg = f"{path}: column {name!r} holds {value_type} values, not numbers"
        raise InputError(msg)
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
    else:
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if n else 0
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            row = int(bad[0])
            msg = (
                f"{path} row {row}, column {name!r}: vector has {lengths[row]} values, "
                f"but row 0 has {width} (ragged vectors)"
            )
            raise InputError(msg)
    values = arr.flatten()
    if values.null_count:
        flat = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        msg = f"{path} row {flat // max(width, 1)}, column {name!r}: a value is missing (null)"
        raise InputError(msg)
    matrix: NDArray[np.floating] = values.to_numpy(zero_copy_only=False).reshape(n, width)
    return matrix


def read_parquet(path: Path, vectors: str | None) -> RawInput:
    """A Parquet table: vectors from list column ``vectors``, one list column, or numbers."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        msg = f"{path} is not a readable Parquet file ({exc})"
        raise InputError(msg) from exc
    return _split_table(path, table, vectors)


def _split_table(path: Path, table: pa.Table, vectors: str | None) -> RawInput:
    """Vectors from list column ``vectors`` (or the only list column), or None; the rest."""
    list_cols = [
        f.name
        for f in table.schema
        if pa.types.is_list(f.type)
        or pa.types.is_large_list(f.type)
        or pa.types.is_fixed_size_list(f.type)
    ]
    if vectors is None and len(list_cols) == 1:
        vectors = list_cols[0]
    if vectors is not None:
        if vectors not in table.column_names:
            msg = f"{path} has no column {vectors!r} (columns: {', '.join(table.column_names)})"
            raise InputError(msg)
        matrix = _list_column_to_matrix(path, table.column(vectors), vectors)
        meta = table.drop([vectors]).to_pandas()
        return matrix, meta, []
    return None, table.to_pandas(), []


HF_DATASET_FILES = ("dataset_info.json", "state.json")
"""What ``datasets.Dataset.save_to_disk`` writes beside its Arrow files."""


def is_hf_dataset_dir(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``datasets.Dataset.save_to_disk``."""
    return path.is_dir() and all((path / name).is_file() for name in HF_DATASET_FILES)


def input_format(path: Path) -> str:
    """The input's format as the manifest records it: the suffix, or ``hf-datasets``."""
    return "hf-datasets" if path.is_dir() else path.suffix.lower().lstrip(".")


def read_hf_dataset(path: Path, vectors: str | None) -> RawInput:
    """A ``save_to_disk`` folder: a table whose vectors are a list column (as in Parquet)."""
    try:
        import datasets
    except ImportError as exc:
        msg = f"{path}: reading a Hugging Face datasets folder needs the datasets package"
        raise InputError(msg + " (pip install datasets)") from exc
    try:
        loaded = datasets.load_from_disk(str(path))  # local Arrow files only: no download
    except (OSError, ValueError, KeyError) as exc:
        msg = f"{path} is not a readable datasets folder ({str(exc).splitlines()[0]})"
        raise InputError(msg) from exc
    if not isinstance(loaded, datasets.Dataset):
        msg = f"{path} holds several splits; give one split's folder, e.g. {path / 'train'}"
        raise InputError(msg)
    table: pa.Table = loaded.with_format("arrow")[:]
    return _split_table(path, table, vectors)


def read_csv(path: Path) -> RawInput:
    """A CSV table; UTF-8, or Latin-1 (said in a note) when it is not valid UTF-8."""
    notes: list[str] = []
    try:
        table = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        table = pd.read_csv(path, encoding="latin-1")
        notes.append(
            f"{path.name} is not valid UTF-8 (byte {exc.start}); read it as Latin-1 — "
            "re-save it as UTF-8 if its text looks wrong"
        )
    except pd.errors.EmptyDataError as exc:
        msg = f"{path} is empty"
        raise InputError(msg) from exc
    except (pd.errors.ParserError, OSError) as exc:
        msg = f"{path} is not a readable CSV file ({str(exc).splitlines()[0]})"
        raise InputError(msg) from exc
    return None, table, notes


def read_h5ad(path: Path, obsm_key: str | None) -> RawInput:
    """An AnnData file: vectors from ``.X`` or ``.obsm[obsm_key]``, metadata from ``.obs``."""
    try:
        import anndata
    except ImportError as exc:
        msg = f"{path}: reading .h5ad needs the anndata package (pip install anndata)"
        raise InputError(msg) from exc
    try:
        adata = anndata.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError) as exc:
        msg = f"{path} is not a readable .h5ad file ({exc})"
        raise InputError(msg) from exc
    if obsm_key is not None:
        if obsm_key not in adata.obsm:
            msg = f"{path} has no .obsm[{obsm_key!r}] (keys: {', '.join(adata.obsm.keys())})"
            raise InputError(msg)
        matrix = np.asarray(adata.obsm[obsm_key])
    else:
        x = adata.X[:]
        matrix = np.asarray(x.toarray() if hasattr(x, "toarray") else x)
    obs = adata.obs.copy()
    obs.insert(0, "obs_name", obs.index.astype(str))
    return matrix, obs.reset_index(drop=True), []


def read_h5ad_obsm(path: Path, key: str) -> NDArray[np.floating]:
    """``.obsm[key]`` of an AnnData file, as a dense 2-D array (for ``--layout``)."""
    import anndata  # read_h5ad has checked that it is installed

    adata = anndata.read_h5ad(path, backed="r")
    if key not in adata.obsm:
        have = ", ".join(adata.obsm.keys()) or "none"
        msg = f"{path} has no .obsm[{key!r}] (keys: {have})"
        raise InputError(msg)
    value = adata.obsm[key]
    matrix = value.to_numpy() if isinstance(value, pd.DataFrame) else np.asarray(value)
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiub":
        msg = f"{path}: .obsm[{key!r}] holds {matrix.dtype} of shape {matrix.shape}, not numbers"
        raise InputError(msg)
    return matrix


def read_table_file(path: Path) -> pd.DataFrame:
    """A metadata table (``--meta``): CSV or Parquet."""
    _check_file(path)
    if path.suffix.lower() == ".parquet":
        return _parquet_table(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return read_csv(path)[1]
    msg = f"{path}: --meta must be a .csv or .parquet file"
    raise InputError(msg)


def _parquet_table(path: Path) -> pd.DataFrame:
    try:
        table: pd.DataFrame = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        msg = f"{path} is not a readable Parquet file ({exc})"
        raise InputError(msg) from exc
    return table


def read_input(spec: InputSpec) -> RawInput:
    """Dispatch on the file's suffix (or a datasets folder)."""
    path = spec.path
    if is_hf_dataset_dir(path):
        return read_hf_dataset(path, spec.vectors)
    if path.is_dir() and (path / "dataset_dict.json").is_file():
        msg = f"{path} holds several splits; give one split's folder, e.g. {path / 'train'}"
        raise InputError(msg)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path, spec.vectors)
    if suffix in (".csv", ".txt"):
        return read_csv(path)
    if suffix == ".h5ad":
        return read_h5ad(path, spec.vectors)
    msg = (
        f"{path}: unknown input format {suffix!r}; use .npy, .parquet, .csv, .h5ad "
        "or a datasets save_to_disk folder"
    )
    raise InputError(msg)
