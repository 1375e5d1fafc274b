"""Layouts the user brings (``--layout NAME=COLX,COLY`` or ``NAME=obsm:KEY``).

The ``imported`` stage stores each as ``imported/<name>.npy`` ((n, 2) float32); the trust
stage scores it, the partitions stage tiles by it and the app serves it like a computed
layout. The manifest's ``layouts`` entry says it was imported and from which columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.config import LAYOUTS, BuildConfig
from explorer.errors import ConfigError
from explorer.ingest.dataset import InputSpec
from explorer.pipeline.stage import BuildContext, Stage, StageResult
from explorer.store.format import IMPORTED_STAGE, check_layout_name


def check_layout_plan(config: BuildConfig, spec: InputSpec) -> None:
    """Refuse a build without layouts, or whose imported names are bad or clash."""
    seen: set[str] = set()
    for source in spec.layouts:
        try:
            check_layout_name(source.name)
        except ValueError as exc:
            msg = f"--layout {source}: {exc}"
            raise ConfigError(msg) from None
        if source.name.lower() in LAYOUTS:
            computed = " (and --layouts computes it)" if source.name in config.layouts else ""
            msg = (
                f"--layout {source}: {source.name!r} is the name of a computed layout"
                f"{computed}; give the imported one another name, e.g. {source.name}_given"
            )
            raise ConfigError(msg)
        if source.name in seen:
            msg = f"--layout names {source.name!r} twice; give each layout its own name"
            raise ConfigError(msg)
        seen.add(source.name)
    if not config.layouts and not spec.layouts:
        msg = (
            "no layout to build: --layouts none needs at least one --layout NAME=COLX,COLY "
            f"(or list some of {', '.join(LAYOUTS)} in --layouts)"
        )
        raise ConfigError(msg)


def _imported(ctx: BuildContext) -> StageResult:
    layouts = ctx.dataset.layouts
    summary: dict[str, Any] = {}
    for name, coords in layouts.items():
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        summary[name] = {
            **ctx.dataset.source.get("layouts", {}).get(name, {}),
            "x_range": [float(lo[0]), float(hi[0])],
            "y_range": [float(lo[1]), float(hi[1])],
        }
    return StageResult(
        arrays={name: np.asarray(c, dtype=np.float32) for name, c in layouts.items()},
        provides={"layouts": {name: name for name in layouts}},
        summary=summary,
    )


def import_stage() -> Stage:
    """The imported layouts, when ``--layout`` names any."""
    return Stage(
        IMPORTED_STAGE,
        _imported,
        requires=("validate",),  # its key holds the input's SHA-256
        params=lambda ctx: {"layouts": ctx.dataset.source.get("layouts", {})},
        enabled=lambda ctx: bool(ctx.dataset.layouts),
        title="layouts imported from the input (--layout)",
    )
