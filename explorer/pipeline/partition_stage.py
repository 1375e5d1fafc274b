"""The partitions stage: per layout, the points as Parquet parts tiled by its coordinates.

Each part row holds the point's row number, its x and y in that layout, the point table's
numeric and categorical columns and every per-point score, so a server (in process or
on Dask workers) colours, filters and hit-tests a view from the parts it touches alone.
On by default from ``PARTITION_MIN_POINTS`` points; ``--partition`` / ``--no-partition``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.config import LAYOUTS
from explorer.pipeline.stage import BuildContext, Stage, StageResult
from explorer.store.format import IMPORTED_STAGE, PARTITION_TABLE, PARTITIONS_STAGE
from explorer.store.partitions import (
    default_rows_per_part,
    point_columns,
    score_columns,
    write_partitions,
)

SCORE_STAGES = ("trust", "intrinsic", "outliers")
TILING_SEED = 0  # the tiles depend on the layout only, never on a run's random seed


def _rows_per_part(ctx: BuildContext) -> int:
    given = ctx.config.partitions.rows_per_part
    return given if given is not None else default_rows_per_part(ctx.dataset.n_points)


def _scores(ctx: BuildContext) -> dict[str, np.ndarray]:
    """Every per-point score of the finished stages, by name (memory-mapped)."""
    out = {}
    for stage in SCORE_STAGES:
        if (ctx.store / stage).is_dir():
            for name, stem in ctx.record(stage).get("provides", {}).get("scores", {}).items():
                out[name] = ctx.array(stage, stem)
    return out


def _partitions(ctx: BuildContext) -> StageResult:
    rows = _rows_per_part(ctx)
    layouts = ctx.layouts()
    scores = _scores(ctx)
    columns = [
        *point_columns(ctx.dataset.points, ctx.roles, taken=scores),
        *score_columns(scores),
    ]
    summary: dict[str, Any] = {
        "rows_per_part": rows,
        "columns": {c.name: c.describe() for c in columns},
        "layouts": {},
    }

    def write(folder: Path) -> None:
        for i, (name, coords) in enumerate(layouts.items()):

            def progress(f: float, i: int = i) -> None:
                ctx.progress((i + f) / len(layouts))

            table = write_partitions(
                folder,
                name,
                coords,
                columns,
                rows_per_part=rows,
                seed=TILING_SEED,
                on_progress=progress,
            )
            summary["layouts"][name] = {
                "parts": len(table),
                "largest_part": int(table["rows"].max()),
            }

    return StageResult(
        extra=write,
        provides={"partitions": {name: PARTITION_TABLE.format(name) for name in layouts}},
        summary=summary,
    )


def partition_stage() -> Stage:
    """Points as Parquet parts per layout; after the layouts and the scores."""
    return Stage(
        PARTITIONS_STAGE,
        _partitions,
        requires=("validate", IMPORTED_STAGE, *LAYOUTS, *SCORE_STAGES),
        params=lambda ctx: {"rows_per_part": _rows_per_part(ctx), "seed": TILING_SEED},
        enabled=lambda ctx: ctx.config.partitions.active(ctx.dataset.n_points),
        libraries=("numpy", "pandas", "pyarrow"),
        title="points as Parquet parts tiled by each layout",
    )
