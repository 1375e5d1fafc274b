"""What a pipeline stage is, what it returns, and what it can read while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.config import BuildConfig
from explorer.ingest.dataset import Dataset
from explorer.store.files import read_stage_array, read_stage_record
from explorer.store.format import IMPORTED_STAGE

Progress = Callable[[float], None]


@dataclass
class StageResult:
    """A stage's outputs; the runner writes them atomically into ``<store>/<stage>/``.

    provides : {"layouts": {name: stem}, "scores": {name: stem}} for the reader's index.
    summary  : small JSON-ready figures shown in the build summary and kept in the manifest.
    notes    : sentences for the user (e.g. how to raise a low kNN recall).
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    extra: Callable[[Path], None] | None = None
    provides: dict[str, dict[str, str]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BuildContext:
    """What a running stage may read: the config, the dataset and finished stages."""

    config: BuildConfig
    dataset: Dataset
    store: Path
    progress: Progress = field(default=lambda _: None)
    # Drawn once per run when no --seed was given, so stages still get an int.
    run_seed: int = 0

    @property
    def seed(self) -> int:
        """The seed stages use: ``--seed`` when given, else this run's random one."""
        return self.config.seed if self.config.seed is not None else self.run_seed

    @property
    def roles(self) -> dict[str, str | None]:
        """Column roles (id, label, prediction, loss, image, text)."""
        return self.dataset.roles

    @property
    def vector_stage(self) -> str:
        """The stage whose vectors later stages use: ``pca`` when it runs, else ``validate``."""
        return "pca" if self.config.pca.n_components is not None else "validate"

    def vectors(self) -> np.ndarray:
        """The (possibly PCA-reduced) vectors, memory-mapped from the store."""
        return self.array(self.vector_stage, "vectors")

    def array(self, stage: str, stem: str) -> np.ndarray:
        """An array of a finished stage, memory-mapped."""
        return read_stage_array(self.store, stage, stem)

    def table(self, stage: str, stem: str) -> pd.DataFrame:
        """A table of a finished stage."""
        return pd.read_parquet(self.store / stage / f"{stem}.parquet")

    def record(self, stage: str) -> dict[str, Any]:
        """A finished stage's record (its summary, parameters, what it provides)."""
        return read_stage_record(self.store, stage)

    def knn(self) -> tuple[np.ndarray, np.ndarray]:
        """The kNN graph (indices, distances)."""
        return self.array("knn", "indices"), self.array("knn", "distances")

    def layouts(self) -> dict[str, np.ndarray]:
        """The layouts of this run by name: the imported ones (``--layout``), then the
        computed ones (``--layouts``)."""
        out = {name: self.array(IMPORTED_STAGE, name) for name in self.dataset.layouts}
        out.update({name: self.array(name, "coords") for name in self.config.layouts})
        return out


@dataclass(frozen=True)
class Stage:
    """One step of the build.

    requires  : stages whose outputs it reads ("vectors" means pca or validate).
    params    : the parameters that define its result (they enter its key).
    enabled   : whether it runs for this config and dataset.
    libraries : distributions whose versions are recorded with it.
    """

    name: str
    run: Callable[[BuildContext], StageResult]
    requires: tuple[str, ...] = ()
    params: Callable[[BuildContext], dict[str, Any]] = field(default=lambda _: {})
    enabled: Callable[[BuildContext], bool] = field(default=lambda _: True)
    libraries: tuple[str, ...] = ("numpy",)
    title: str = ""
