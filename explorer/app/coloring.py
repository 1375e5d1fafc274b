"""How a column or score becomes the map's colouring (built once per process, shared).

Numbers: a colour scale over their 1st-99th percentiles (so a few extremes do not wash out
the rest); outlier scores take the highest value per pixel, so one rare high score is not
averaged away. Categories: the ``TOP_CATEGORIES`` most frequent get palette colours, the
rest one grey "other".
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from explorer.render.colors import DEFAULT_PALETTE, OTHER_COLOR, CategoricalColor
from explorer.render.raster import NumericColor

TOP_CATEGORIES = 10


def numeric_coloring(name: str, values: NDArray[np.float32]) -> NumericColor:
    """The colouring of a numeric column or score ``name`` with ``values`` (n,)."""
    finite = values[np.isfinite(values)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    reduction: Literal["mean", "max"] = "max" if name.startswith("outlier") else "mean"
    return NumericColor(values, span=(float(lo), float(max(hi, lo))), reduction=reduction)


def categorical_coloring(
    codes: NDArray[np.int32], labels: list[str], counts: NDArray[np.int64]
) -> CategoricalColor:
    """The colouring of a categorical column: codes (n,), its labels and their counts."""
    order = np.argsort(-counts, kind="stable")
    shown = order[: min(TOP_CATEGORIES, len(labels))]
    # Recode to legend slots (uint8): top categories by frequency, then "other".
    slot_of_code = np.full(len(labels), len(shown), np.uint8)
    slot_of_code[shown] = np.arange(len(shown), dtype=np.uint8)
    names = [labels[c] for c in shown]
    colors = list(DEFAULT_PALETTE[: len(shown)])
    if len(labels) > len(shown):
        names.append("other")
        colors.append(OTHER_COLOR)
    slots = slot_of_code[codes]
    slots.setflags(write=False)
    return CategoricalColor(slots, np.arange(len(names)), tuple(names), tuple(colors))
