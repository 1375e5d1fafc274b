"""THE contract between building and serving: file names, dtypes, shapes, the version.

A store is a directory::

    my.store/
      manifest.json              written last; its absence means "incomplete"
      <stage>/stage.json         one folder per finished stage, renamed into place whole
      <stage>/<array>.npy        big arrays, opened with memory mapping
      <stage>/<table>.parquet    tables
      <stage>/<dir>/part-*.parquet  a directory of parts (the partitions stage)
      selections/<name>.npz      selections saved from the app: ``rows`` (sorted int64 row
                                 indices) and ``data_id`` (the data they were made on)

Both sides import this module; nothing else writes file names or dtypes down.
``docs/store-format.md`` is the human version of this file: change both together.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FORMAT_VERSION = 1
FORMAT_NAME = "explorer-projection-store"

MANIFEST = "manifest.json"
STAGE_META = "stage.json"
SELECTIONS_DIR = "selections"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".old-"
LOCK_FILE = ".writer.lock"  # flock'ed by the one writer (a build or a selection save)


@dataclass(frozen=True)
class FileSpec:
    """One file a stage writes.

    name    : file name in the stage folder; ``*`` matches any stem (``trust/*.npy``,
              ``thumbs/sheet-*.png``). A name ending in ``/`` declares a directory of
              Parquet parts (``partitions/*/`` holds ``<layout>/part-NNNNN.parquet``): its
              ``shape`` rule applies to the rows of all its parts together and ``columns``
              to each part; ``index`` names the table listing the parts (``{}`` is the
              directory's name), whose rows, bounds and files are checked against them.
    dtype   : an array's dtype (``None`` for tables and images).
    shape   : an array's shape, or a table's ``(rows,)``. Each entry is an int, a symbol
              (``n`` points and ``d`` input dimensions from the manifest; any other letter
              is bound by its first use within the stage and must agree after), a symbol
              plus an int (``"s+1"``), or ``"*"`` (anything).
    columns : columns a table must have (it may have more).
    required: whether the stage always writes it.
    """

    name: str
    doc: str
    dtype: str | None = None
    shape: tuple[str | int, ...] = ()
    columns: tuple[str, ...] = ()
    required: bool = True
    index: str | None = None

    @property
    def kind(self) -> str:
        """'array', 'table', 'parts' (a directory of Parquet parts) or 'image'."""
        if self.name.endswith("/"):
            return "parts"
        if self.name.endswith(".npy"):
            return "array"
        return "table" if self.name.endswith(".parquet") else "image"


def _array(name: str, dtype: str, shape: tuple[str | int, ...], doc: str, **kw: Any) -> FileSpec:
    return FileSpec(f"{name}.npy", doc, dtype, shape, **kw)


def _layout_files() -> tuple[FileSpec, ...]:
    return (_array("coords", "float32", ("n", 2), "the 2-D layout, input row order"),)


# The partitions stage: per layout, its points as Parquet parts tiled by its coordinates.
PARTITIONS_STAGE = "partitions"
PART_FILE = "part-{:05d}.parquet"
PART_GLOB = "part-*.parquet"
PARTITION_TABLE = "{}.parquet"  # per layout: one row per part
# Every part holds these columns; point-table columns and scores follow them.
PART_ROW, PART_X, PART_Y = "row", "x", "y"
PART_RESERVED = (PART_ROW, PART_X, PART_Y)
# A point-table column whose name is reserved (or a score's) is stored under this prefix.
PART_POINT_PREFIX = "point:"
PARTITION_TABLE_COLUMNS: dict[str, tuple[str, str]] = {
    "part": ("int32", "the part's number, 0, 1, ... in file order"),
    "file": ("str", "the part's file, relative to the stage folder: <layout>/part-NNNNN.parquet"),
    "rows": ("int64", "points in the part (each point is in exactly one part of a layout)"),
    "x0": ("float64", "smallest x of the part's points"),
    "x1": ("float64", "largest x"),
    "y0": ("float64", "smallest y"),
    "y1": ("float64", "largest y"),
}

# Layouts brought by the user (``--layout NAME=COLX,COLY`` or ``NAME=obsm:KEY``).
IMPORTED_STAGE = "imported"
LAYOUT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,39}$")


# stage -> its files, one entry per file. Add a file here, in docs/store-format.md, and
# the writer and reader check it (tests/store/test_contract.py finds undocumented ones).
STAGE_FILES: dict[str, tuple[FileSpec, ...]] = {
    "validate": (
        FileSpec(
            "points.parquet",
            "the id column first, then every metadata column, input row order",
            shape=("n",),
        ),
        _array("vectors", "float32", ("n", "d"), "the input vectors, finite, input row order"),
        _array("duplicate_of", "int64", ("n",), "first earlier row with the same vector, or -1"),
    ),
    "errors": (
        _array("error", "int8", ("n",), "per point: 1 wrong, 0 right, -1 unknown"),
        _array("loss", "float32", ("n",), "the --loss column (NaN unknown)", required=False),
    ),
    "pca": (
        _array("vectors", "float32", ("n", "p"), "vectors projected on the top p axes"),
        _array("components", "float32", ("p", "d"), "the principal axes"),
        _array("mean", "float32", ("d",), "the mean removed before projecting"),
        _array("explained_variance", "float32", ("p",), "variance along each axis"),
    ),
    "knn": (
        _array("indices", "int32", ("n", "k"), "neighbours, nearest first; column 0 is self"),
        _array("distances", "float32", ("n", "k"), "their distances; column 0 is 0"),
    ),
    "umap": _layout_files(),
    "largevis": _layout_files(),
    "hmds": (
        _array("coords", "float32", ("n", 2), "the layout in the Poincaré disk (|x| < 1)"),
        _array("landmarks", "int64", ("l",), "rows embedded exactly by h-MDS"),
    ),
    "imported": (
        _array("*", "float32", ("n", 2), "layout <name> imported from the input (--layout)"),
    ),
    "trust": (_array("*", "float32", ("n",), "score trust:<layout> of each layout"),),
    "intrinsic": (
        _array("lid", "float32", ("n",), "local intrinsic dimension, smoothed over kNN"),
        _array("lid_raw", "float32", ("n",), "local intrinsic dimension, per point"),
    ),
    "outliers": (
        _array("outlier", "float32", ("n",), "score 'outlier': mean weight beside random samples"),
        _array("outlier_local", "float32", ("n",), "score 'outlier_local': kNN spread weight"),
        _array("scales", "float64", ("r",), "the scale t of each of the r random samples"),
    ),
    "hierarchy": (
        FileSpec(
            "nodes.parquet",
            "one row per node (DFS pre-order, node 0 the root): name, size, statistics",
            shape=("m",),
            columns=("node", "parent", "depth", "size", "name", "errors", "error_rate"),
        ),
        _array("order", "int64", ("n",), "rows in DFS order: node v is order[start[v]:end[v]]"),
        _array("parent", "int32", ("m",), "parent node (-1 for the root)"),
        _array("depth", "int32", ("m",), "depth of each node (root 0)"),
        _array("start", "int64", ("m",), "first position of a node's rows in order"),
        _array("end", "int64", ("m",), "one past its last position"),
        _array("size", "int64", ("m",), "points in each node"),
        _array("centroid", "float32", ("m", "v"), "mean vector of each node"),
        _array("leaf", "int32", ("n",), "the leaf node of each point"),
        _array("representatives", "int64", ("m", "r"), "typical rows of each node, -1 padded"),
    ),
    "slices": (
        FileSpec(
            "slices.parquet",
            "one row per slice: name, kind, description, size, error statistics",
            shape=("s",),
            columns=("name", "kind", "size", "errors", "error_rate", "lift", "lower_bound"),
        ),
        _array("members", "int64", ("*",), "every slice's sorted rows, slice after slice"),
        _array("offsets", "int64", ("s+1",), "slice i is members[offsets[i]:offsets[i+1]]"),
        _array("examples", "int64", ("s", "*"), "rows to show first per slice, -1 padded"),
    ),
    PARTITIONS_STAGE: (
        FileSpec(
            PARTITION_TABLE.format("*"),
            "per layout, one row per part: " + ", ".join(PARTITION_TABLE_COLUMNS),
            shape=("*",),
            columns=tuple(PARTITION_TABLE_COLUMNS),
        ),
        FileSpec(
            "*/",
            "per layout, its points in parts tiled by its coordinates: row, x, y, then the "
            "point table's numeric and categorical columns and the scores",
            shape=("n",),
            columns=PART_RESERVED,
            index=PARTITION_TABLE,
        ),
    ),
    "thumbs": (
        _array("cell", "int32", ("n",), "sprite cell of each point (sheet*per_sheet+slot), -1"),
        FileSpec("sheet-*.png", "RGBA sprite sheets of per_side x per_side thumbnails"),
    ),
}


def error_values(codes: NDArray[np.int8], loss: NDArray[np.floating] | None) -> NDArray[np.float64]:
    """THE per-point error, from the errors stage's arrays: (n,) float64, NaN unknown.

    The loss when the build had ``--loss``, else 1.0 wrong / 0.0 right. Rates are means
    over the known points only: the slices stage, the app and the export all read this.
    """
    if loss is not None:
        return np.asarray(loss, dtype=np.float64)
    c = np.asarray(codes)
    return np.where(c < 0, np.nan, c.astype(np.float64))


def file_spec(stage: str, fname: str) -> FileSpec | None:
    """The declaration matching ``fname`` in ``stage``, or None when it is undeclared.

    ``*`` never matches across ``/``; a part file ``<dir>/part-NNNNN.parquet`` matches the
    stage's directory declaration ``*/``.
    """
    head, sep, tail = fname.partition("/")
    for spec in STAGE_FILES.get(stage, ()):
        if spec.kind == "parts":
            # never "..": a part must lie inside its stage folder
            in_dir = sep and "/" not in tail and not head.startswith(".")
            in_dir = in_dir and fnmatch.fnmatchcase(head, spec.name[:-1])
            if in_dir and fnmatch.fnmatchcase(tail, PART_GLOB):
                return spec
        elif not sep and fnmatch.fnmatchcase(fname, spec.name):
            return spec
    return None


def check_layout_name(name: str) -> str:
    """``name`` if it can name a layout (it becomes a file name), else raise ValueError."""
    if not LAYOUT_NAME_RE.match(name):
        msg = (
            f"invalid layout name {name!r}: use 1-40 letters, digits, '_' or '-', "
            "starting with a letter"
        )
        raise ValueError(msg)
    return name


# The slices stage's table ``slices/slices.parquet``, one row per slice in display order
# (row i is slice i of ``members``/``offsets``): column -> (dtype, meaning).
SLICE_COLUMNS: dict[str, tuple[str, str]] = {
    "name": ("str", "what the slice is: a predicate, or dominant values/terms and its size"),
    "kind": ("str", "metadata, cluster, failure, embedding or saved"),
    "description": ("str", "how it was found, e.g. 'node 12, depth 2'"),
    "size": ("int64", "number of members"),
    "n_scored": ("float64", "members with a known error"),
    "errors": ("float64", "sum of their errors (or losses)"),
    "error_rate": ("float64", "errors / n_scored; NaN without labels"),
    "lift": ("float64", "error_rate over the overall rate"),
    "lower_bound": ("float64", "Wilson lower bound on error_rate, Bonferroni over n_tried"),
    "lower_lift": ("float64", "lower_bound over the overall rate"),
    "p_value": ("float64", "one-sided test of 'rate above overall'"),
    "p_adjusted": ("float64", "p_value times n_tried, at most 1"),
    "n_tried": ("float64", "slices examined to find this one"),
    "score": ("float64", "Sliceline's score"),
    "rank": ("int64", "display order, 1 first; never before the slice that explains it"),
    "parent_slice": ("int64", "row of the broader slice that explains this one, or -1"),
    "parent_overlap": ("float32", "share of this slice's members inside parent_slice"),
    "related": ("str", "the same in words: 'in scanner=B (96%)', 'explains 3', or ''"),
}

LAYOUT_DTYPE = np.float32
SCORE_DTYPE = np.float32
SELECTION_DTYPE = np.int64

# A layout stage "umap" writes "<stage>/coords.npy"; a score "trust:umap" is written by
# stage "trust" as "trust/umap.npy". Each stage's stage.json lists what it provides.
LAYOUT_FILE = "coords"
SPRITE_SHEET = "sheet-{:04d}.png"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}$")


def check_selection_name(name: str) -> str:
    """Return ``name`` stripped if it is a valid selection name, else raise ValueError.

    Names become file names, so they are restricted to letters, digits, space, '_', '.',
    '-' (1-80 characters, not starting with a dot or space).
    """
    stripped = name.strip()
    if not _NAME_RE.match(stripped) or stripped.endswith("."):
        msg = (
            f"invalid selection name {name!r}: use 1-80 letters, digits, spaces, '_', '.' "
            "or '-', starting with a letter or digit"
        )
        raise ValueError(msg)
    return stripped


SELECTION_SUFFIX = ".npz"


def selection_file(name: str) -> str:
    """Relative path of a saved selection's file."""
    return f"{SELECTIONS_DIR}/{check_selection_name(name)}{SELECTION_SUFFIX}"


def data_id(manifest: Mapping[str, Any]) -> str:
    """A fingerprint of the data a store was built from (input file hashes, point count).

    Saved selections carry it: row numbers mean the same points only in a store built
    from the same input, whatever the build options.
    """
    source = manifest.get("source") or {}
    if not isinstance(source, Mapping):
        source = {}
    blob = json.dumps(
        {
            "sha256": source.get("sha256"),
            "meta_sha256": source.get("meta_sha256"),
            "n_points": manifest.get("n_points"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
