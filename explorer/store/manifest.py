"""The manifest a store writer writes last (``StoreWriter.write_manifest``): what it holds,
declared once for every writer (the pipeline, the synthetic stores, the benchmarks).

Its keys (docs/store-format.md, "manifest.json"): ``format`` and ``format_version``, the
``explorer_version`` and time that wrote it, ``n_points`` and ``dim``, the ``source`` of
the data, the ``roles`` of its columns (every role named, None when absent), the build
``config``, each stage's record under ``stages`` (in the order they ran), and where the
layouts, scores and partitioned layouts are. The scores and partitions are what the stage
records say they provide (``record["provides"]``), so a writer cannot list one that no
stage wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from explorer.store.format import FORMAT_NAME, FORMAT_VERSION, LAYOUT_FILE
from explorer.version import __version__

ROLES = ("id", "label", "prediction", "loss", "image", "text")
"""The column roles a manifest names (``roles``: role -> column or None)."""


def layout_entry(stage: str, file: str = LAYOUT_FILE, **more: Any) -> dict[str, Any]:
    """A manifest ``layouts`` entry: the layout's array is ``<stage>/<file>.npy``."""
    return {"stage": stage, "file": file, **more}


def provided(stages: Mapping[str, Mapping[str, Any]], kind: str) -> dict[str, dict[str, str]]:
    """What the stage records provide of ``kind`` (``scores``: name -> array stem;
    ``partitions``: layout -> partition table), as manifest entries naming their stage."""
    field = {"scores": "file", "partitions": "table"}[kind]
    return {
        name: {"stage": stage, field: value}
        for stage, record in stages.items()
        for name, value in record.get("provides", {}).get(kind, {}).items()
    }


def store_manifest(
    *,
    n_points: int,
    dim: int,
    source: Mapping[str, Any],
    roles: Mapping[str, str | None],
    stages: Mapping[str, dict[str, Any]],
    layouts: Mapping[str, dict[str, Any]],
    config: Mapping[str, Any] | None = None,
    build_seconds: float | None = None,
) -> dict[str, Any]:
    """The manifest of a store whose ``stages`` (name -> stage record, as
    ``StoreWriter.write_stage`` returns it) are written; see the module docstring."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        msg = f"unknown column role(s) {', '.join(unknown)} (roles: {', '.join(ROLES)})"
        raise ValueError(msg)
    partitions = provided(stages, "partitions")
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "explorer_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "n_points": int(n_points),
        "dim": int(dim),
        "source": dict(source),
        "roles": {role: roles.get(role) for role in ROLES},
        "config": dict(config or {}),
        "stages": dict(stages),
        "layouts": dict(layouts),
        "scores": provided(stages, "scores"),
        **({"partitions": partitions} if partitions else {}),
        **({"build_seconds": round(build_seconds, 3)} if build_seconds is not None else {}),
    }
