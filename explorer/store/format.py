"""THE contract between building and serving: file names, dtypes, shapes, the version.

A store is a directory::

    my.store/
      manifest.json              written last; its absence means "incomplete"
      <stage>/stage.json         one folder per finished stage, renamed into place whole
      <stage>/<array>.npy        big arrays, opened with memory mapping
      <stage>/<table>.parquet    tables
      selections/<name>.npy      selections saved from the app (sorted int64 row indices)

Both sides import this module; nothing else writes file names or dtypes down.
``docs/store-format.md`` is the human version of this file: change both together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "explorer-projection-store"

MANIFEST = "manifest.json"
STAGE_META = "stage.json"
SELECTIONS_DIR = "selections"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".old-"


@dataclass(frozen=True)
class ArraySpec:
    """What one stored array must look like. ``shape`` uses 'n' for the point count."""

    dtype: str
    shape: tuple[str | int, ...]
    doc: str


# stage -> file stem -> spec. Layout and score files are declared by pattern below.
ARRAYS: dict[str, dict[str, ArraySpec]] = {
    "validate": {
        "vectors": ArraySpec("float32", ("n", "d"), "the input vectors, row order = points"),
        "duplicate_of": ArraySpec(
            "int64", ("n",), "row of the first identical vector, or -1 when unique"
        ),
    },
    "pca": {
        "vectors": ArraySpec("float32", ("n", "p"), "vectors projected on the top components"),
        "components": ArraySpec("float32", ("p", "d"), "principal axes"),
        "mean": ArraySpec("float32", ("d",), "the input mean removed before projecting"),
        "explained_variance": ArraySpec("float32", ("p",), "variance along each axis"),
    },
    "knn": {
        "indices": ArraySpec("int32", ("n", "k"), "neighbours, nearest first; column 0 is self"),
        "distances": ArraySpec("float32", ("n", "k"), "distances to them; column 0 is 0"),
    },
    "outliers": {
        "outlier": ArraySpec(
            "float32", ("n",), "score 'outlier': mean weight beside random samples (points, groups)"
        ),
        "outlier_local": ArraySpec(
            "float32", ("n",), "score 'outlier_local': kNN spread, the local weighting vector"
        ),
        "scales": ArraySpec("float64", ("r",), "the scale t of each of the r random samples"),
    },
    "thumbs": {
        "cell": ArraySpec("int32", ("n",), "sprite cell of each point (sheet*per_sheet+slot), -1"),
    },
}

TABLES: dict[str, tuple[str, ...]] = {
    "validate": ("points",),
}

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


def selection_file(name: str) -> str:
    """Relative path of a saved selection's file."""
    return f"{SELECTIONS_DIR}/{check_selection_name(name)}.npy"
