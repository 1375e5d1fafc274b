"""What the user gave us (``InputSpec``) and what ingest makes of it (``Dataset``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

ROLE_NAMES = ("id", "label", "prediction", "loss", "image", "text")
OBSM_PREFIX = "obsm:"


@dataclass(frozen=True)
class LayoutSource:
    """A 2-D layout the user brings (``--layout NAME=COLX,COLY`` or ``NAME=obsm:KEY``).

    columns : the x and y columns of the input table (or of ``--meta``), or
    obsm    : a key of an ``.h5ad`` input's ``.obsm`` (its first two columns are x, y).
    """

    name: str
    columns: tuple[str, str] | None = None
    obsm: str | None = None

    @classmethod
    def parse(cls, text: str) -> LayoutSource:
        """``"NAME=COLX,COLY"`` or ``"NAME=obsm:KEY"``; a ValueError says what is wrong."""
        name, eq, where = (part.strip() for part in text.partition("="))
        if not eq or not name or not where:
            msg = f"--layout {text!r}: write NAME=COLX,COLY or NAME=obsm:KEY"
            raise ValueError(msg)
        if where.startswith(OBSM_PREFIX) and where[len(OBSM_PREFIX) :].strip():
            return cls(name, obsm=where[len(OBSM_PREFIX) :].strip())
        cols = [c.strip() for c in where.split(",")]
        if len(cols) != 2 or not all(cols):
            msg = f"--layout {text!r}: name two columns, x then y: NAME=COLX,COLY"
            raise ValueError(msg)
        return cls(name, columns=(cols[0], cols[1]))

    def describe(self) -> dict[str, Any]:
        """JSON-ready: where the layout came from (the manifest records it)."""
        if self.obsm is not None:
            return {"obsm": self.obsm}
        return {"columns": list(self.columns or ())}

    def __str__(self) -> str:
        where = f"{OBSM_PREFIX}{self.obsm}" if self.obsm else ",".join(self.columns or ())
        return f"{self.name}={where}"


@dataclass(frozen=True)
class InputSpec:
    """The input files and the columns' roles, as given on the command line."""

    path: Path
    vectors: str | None = None
    meta: Path | None = None
    id: str | None = None
    label: str | None = None
    prediction: str | None = None
    loss: str | None = None
    image_col: str | None = None
    image_root: Path | None = None
    text_col: str | None = None
    layouts: tuple[LayoutSource, ...] = ()

    def role_columns(self) -> dict[str, str | None]:
        """Role name -> column name (None when the role is unused)."""
        return {
            "id": self.id,
            "label": self.label,
            "prediction": self.prediction,
            "loss": self.loss,
            "image": self.image_col,
            "text": self.text_col,
        }

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the manifest."""
        return {
            "path": str(self.path),
            "vectors": self.vectors,
            "meta": None if self.meta is None else str(self.meta),
            "image_root": None if self.image_root is None else str(self.image_root),
            "roles": self.role_columns(),
            **({"layouts": {s.name: s.describe() for s in self.layouts}} if self.layouts else {}),
        }


@dataclass
class Dataset:
    """Validated vectors and the point table, ready for the pipeline.

    vectors : (n, d) float32, all finite
    points  : n rows; the id column first, then every metadata column, input row order
    roles   : role -> column name in ``points`` (None when absent)
    """

    vectors: NDArray[np.float32]
    points: pd.DataFrame
    roles: dict[str, str | None]
    source: dict[str, Any]
    image_root: Path | None = None
    duplicate_of: NDArray[np.int64] | None = None
    notes: list[str] = field(default_factory=list)
    # Layouts brought by the user, by name: (n, 2) float32, finite (their columns are
    # removed from ``points``; ``source["layouts"]`` says where each came from).
    layouts: dict[str, NDArray[np.float32]] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        """Number of points."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        return int(self.vectors.shape[1])

    @property
    def n_duplicates(self) -> int:
        """Points whose vector exactly repeats an earlier point's."""
        if self.duplicate_of is None:
            return 0
        return int((self.duplicate_of >= 0).sum())
