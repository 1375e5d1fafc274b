"""What to colour points by: a categorical column (top categories + "other") or a numeric one.

Build these once per column (they check their arrays once); ``render`` reads them per frame.
Arrays stay in the store's point order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import colorcet
import numpy as np
from numpy.typing import NDArray

from explorer.errors import ConfigError, InputError
from explorer.render._shade import DEFAULT_VALUE_CMAP, rgb_triples

# glasbey_category10 (Tableau's first ten, then distinct hues) without its grey, which
# would read as "other".
DEFAULT_PALETTE: tuple[str, ...] = tuple(
    c for c in colorcet.palette["glasbey_category10"] if c != "#7e7e7e"
)
OTHER_COLOR = "#bbbbbb"


@dataclass(frozen=True, eq=False)
class CategoricalColor:
    """Colour by category; several codes may share a legend slot (the "other" slot).

    codes : (n,) uint8 / uint16 (any integer dtype) category code per point.
    slot_of_code : (n_codes,) intp, the legend slot of each code.
    labels, colors : (n_slots,) the legend's labels and ``"#rrggbb"`` colours.
    """

    codes: NDArray[np.integer]
    slot_of_code: NDArray[np.intp]
    labels: tuple[str, ...]
    colors: tuple[str, ...]

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 1 or codes.dtype.kind not in "ui":
            msg = f"codes must be a 1-D integer array, got {codes.dtype} {codes.shape}"
            raise InputError(msg)
        n_codes = len(self.slot_of_code)
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= n_codes):
            msg = f"codes must lie in [0, {n_codes}); give every code a legend slot"
            raise InputError(msg)
        if len(self.labels) != len(self.colors):
            msg = f"{len(self.labels)} labels but {len(self.colors)} colours; give one each"
            raise ConfigError(msg)
        slots = np.asarray(self.slot_of_code)
        if slots.size and (int(slots.min()) < 0 or int(slots.max()) >= len(self.labels)):
            msg = f"slot_of_code must lie in [0, {len(self.labels)}) (one per legend label)"
            raise ConfigError(msg)

    def code_rgb(self) -> NDArray[np.uint32]:
        """(n_codes, 3) uint32 RGB of each code (its slot's colour)."""
        return rgb_triples(self.colors)[np.asarray(self.slot_of_code)]

    def take(self, indices: NDArray[np.int64]) -> CategoricalColor:
        """The same colouring for the points ``indices`` only."""
        return CategoricalColor(self.codes[indices], self.slot_of_code, self.labels, self.colors)


@dataclass(frozen=True, eq=False)
class NumericColor:
    """Colour by a numeric column or per-point score: per-pixel mean (or max) via ``cmap``.

    values : (n,) float32 (NaN = no value: not coloured, still counted as drawn).
    span : fixed (low, high) for the colour bar; None = the frame's pixel range.
    reduction : ``"mean"`` for attributes, ``"max"`` so rare high scores stay visible,
        ``"min"`` so rare low ones do.
    """

    values: NDArray[np.floating]
    cmap: str | tuple[str, ...] = DEFAULT_VALUE_CMAP
    span: tuple[float, float] | None = None
    reduction: Literal["mean", "max", "min"] = "mean"

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 1 or values.dtype.kind != "f":
            msg = f"values must be a 1-D float array, got {values.dtype} {values.shape}"
            raise InputError(msg)
        if self.reduction not in ("mean", "max", "min"):
            msg = f"reduction {self.reduction!r} is not 'mean', 'max' or 'min'"
            raise ConfigError(msg)
        if self.span is not None and not self.span[1] >= self.span[0]:
            msg = f"span {self.span} needs low <= high"
            raise ConfigError(msg)

    def take(self, indices: NDArray[np.int64]) -> NumericColor:
        """The same colouring for the points ``indices`` only."""
        return NumericColor(self.values[indices], self.cmap, self.span, self.reduction)


def categorical_color(
    codes: NDArray[np.integer],
    labels: Sequence[str],
    *,
    top: int = 10,
    palette: Sequence[str] = DEFAULT_PALETTE,
    other_label: str = "other",
    other_color: str = OTHER_COLOR,
) -> CategoricalColor:
    """Give the ``top`` most frequent categories a palette colour each, the rest "other".

    codes : (n,) integer codes into ``labels``. Slots are ordered by global frequency, so
    colours do not change when the user zooms. Costs one ``bincount`` over the codes.
    """
    codes = np.asarray(codes)
    if codes.ndim != 1 or codes.dtype.kind not in "ui":
        msg = f"codes must be a 1-D integer array, got {codes.dtype} {codes.shape}"
        raise InputError(msg)
    if codes.size and int(codes.min()) < 0:
        msg = "codes must be >= 0; recode missing values as their own category"
        raise InputError(msg)
    if top < 1 or top > len(palette):
        msg = f"top={top} needs 1 <= top <= {len(palette)} (the palette's size)"
        raise ConfigError(msg)
    counts = np.bincount(codes, minlength=len(labels))
    if counts.size > len(labels):
        msg = f"codes reach {counts.size - 1} but only {len(labels)} labels were given"
        raise InputError(msg)
    order = np.argsort(-counts, kind="stable")
    shown = order[:top]
    slot_of_code = np.full(len(labels), len(shown), np.intp)
    slot_of_code[shown] = np.arange(len(shown))
    names = [str(labels[c]) for c in shown]
    colors = list(palette[: len(shown)])
    if len(labels) > len(shown):
        names.append(other_label)
        colors.append(other_color)
    return CategoricalColor(codes, slot_of_code, tuple(names), tuple(colors))
