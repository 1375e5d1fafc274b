"""Build parameters: one frozen dataclass per stage, with defaults and declared bounds.

Bounds live here once (in the spirit of scikit-learn's ``_parameter_constraints``) and
are checked when a build starts. Each stage's dataclass is copied into the manifest, so a
store records exactly how it was made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from explorer.errors import ConfigError

LAYOUTS = ("umap", "largevis", "hmds")
METRICS = ("euclidean", "cosine")


@dataclass(frozen=True)
class Bound:
    """A numeric bound: ``low <= value <= high`` (``None`` for open)."""

    low: float | None = None
    high: float | None = None
    allow_none: bool = False

    def check(self, owner: str, name: str, value: Any) -> None:
        if value is None:
            if self.allow_none:
                return
            msg = f"--{owner}{name.replace('_', '-')} is required"
            raise ConfigError(msg)
        if not isinstance(value, int | float) or isinstance(value, bool):
            msg = f"{owner}{name} must be a number, got {value!r}"
            raise ConfigError(msg)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            low = "-inf" if self.low is None else f"{self.low:g}"
            high = "inf" if self.high is None else f"{self.high:g}"
            msg = f"{owner}{name} = {value!r} is out of range [{low}, {high}]"
            raise ConfigError(msg)


def bounded(default: Any, low: float | None = None, high: float | None = None) -> Any:
    """A dataclass field that carries its bounds in its metadata."""
    return field(default=default, metadata={"bound": Bound(low, high, allow_none=default is None)})


class _Checked:
    """Mixin: ``check()`` validates every field that declares a bound."""

    def check(self) -> None:
        owner = getattr(self, "_prefix", "")
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            bound = f.metadata.get("bound")
            if bound is not None:
                bound.check(owner, f.name, getattr(self, f.name))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True)
class PcaConfig(_Checked):
    """Optional linear reduction before everything else (``--pca N``)."""

    n_components: int | None = bounded(None, 2, 4096)
    chunk_rows: int = bounded(65536, 1024, None)


@dataclass(frozen=True)
class KnnConfig(_Checked):
    """The approximate kNN graph every later stage reuses."""

    n_neighbors: int = bounded(15, 2, 200)
    metric: str = "euclidean"
    # NN-descent effort; None lets the stage pick from n (see compute.knn).
    n_iters: int | None = bounded(None, 1, 200)
    max_candidates: int | None = bounded(None, 4, 500)
    n_trees: int | None = bounded(None, 1, 256)
    # NN-descent builds a graph of factor × n_neighbors and keeps the nearest n_neighbors:
    # the cheapest way to raise recall on high-dimensional data. None: 2 up to 200k
    # points, 3 above (docs/benchmarks.md).
    build_factor: float | None = bounded(None, 1.0, 10.0)
    recall_sample: int = bounded(1000, 0, 100000)

    def check(self) -> None:
        super().check()
        if self.metric not in METRICS:
            msg = f"--metric {self.metric!r} is not one of {', '.join(METRICS)}"
            raise ConfigError(msg)


@dataclass(frozen=True)
class UmapConfig(_Checked):
    """umap-learn on the precomputed kNN graph."""

    min_dist: float = bounded(0.1, 0.0, 10.0)
    spread: float = bounded(1.0, 0.01, 100.0)
    n_epochs: int | None = bounded(None, 1, 10000)


@dataclass(frozen=True)
class LargeVisConfig(_Checked):
    """Our LargeVis implementation on the same kNN graph."""

    perplexity: float = bounded(50.0, 1.0, 1000.0)
    # ~2000 edge samples per point reach UMAP's trustworthiness within 0.01 (docs/benchmarks.md)
    samples_per_point: int = bounded(2000, 1, 100000)
    n_negatives: int = bounded(5, 1, 50)
    gamma: float = bounded(7.0, 0.0, 100.0)
    learning_rate: float = bounded(1.0, 1e-6, 100.0)
    parallel: bool = True


@dataclass(frozen=True)
class HmdsConfig(_Checked):
    """Hyperbolic MDS into the Poincaré disk: landmarks, out-of-sample, refinement."""

    n_landmarks: int = bounded(2000, 10, 20000)
    distance: str = "geodesic"
    refine_steps: int = bounded(2000, 0, 100000)

    def check(self) -> None:
        super().check()
        if self.distance not in ("geodesic", "euclidean"):
            msg = f"hmds distance {self.distance!r} is not 'geodesic' or 'euclidean'"
            raise ConfigError(msg)


@dataclass(frozen=True)
class HierarchyConfig(_Checked):
    """Recursive k-means into a treemap-ready tree."""

    branching: int = bounded(8, 2, 64)
    leaf_size: int = bounded(50, 2, 1_000_000)
    max_depth: int = bounded(6, 1, 32)
    n_representatives: int = bounded(8, 1, 100)


@dataclass(frozen=True)
class IntrinsicConfig(_Checked):
    """Local and global intrinsic dimension from the kNN distances."""

    n_neighbors: int | None = bounded(None, 4, 200)  # the point itself + 3 neighbours
    smooth: bool = True


@dataclass(frozen=True)
class OutlierConfig(_Checked):
    """Magnitude weighting-vector outlier scores."""

    # the local (kNN spread) score's scale; None: from the kNN distances
    scale: float | None = bounded(None, 1e-12, None)
    exact_sample: int = bounded(2000, 0, 20000)
    # the point-and-group score: R random samples of s points, each seen at the scale where
    # its magnitude is 1 + share·(s − 1) (compute/subsample_weights.py, docs/analytics.md)
    n_samples: int = bounded(16, 1, 1000)
    sample_size: int = bounded(32, 2, 2000)
    share: float = bounded(0.1, 0.001, 0.999)


@dataclass(frozen=True)
class SliceConfig(_Checked):
    """Metadata, cluster, failure and embedding slices."""

    min_size: int = bounded(10, 1, None)
    max_predicates: int = bounded(3, 1, 4)
    quantile_bins: int = bounded(4, 2, 20)
    alpha: float = bounded(0.6, 0.0, 1.0)
    confidence: float = bounded(0.95, 0.5, 0.9999)
    ignore: tuple[str, ...] = ()  # metadata columns not to slice on


@dataclass(frozen=True)
class ThumbConfig(_Checked):
    """Image thumbnails packed into sprite sheets."""

    size: int = bounded(48, 8, 256)
    per_sheet_side: int = bounded(32, 1, 128)


# From this many points a build also writes its points as Parquet parts tiled by each
# layout (the partitions stage; --partition / --no-partition override it).
PARTITION_MIN_POINTS = 2_000_000


@dataclass(frozen=True)
class PartitionConfig(_Checked):
    """Points, layouts and scores as Parquet parts tiled by each layout (``--partition``)."""

    enabled: bool | None = None  # None: on from PARTITION_MIN_POINTS points
    # None: n/16 within [250k, 2M] rows (explorer.store.partitions.default_rows_per_part)
    rows_per_part: int | None = bounded(None, 1, None)

    def active(self, n_points: int) -> bool:
        """Whether a build of ``n_points`` writes the partitions stage."""
        return n_points >= PARTITION_MIN_POINTS if self.enabled is None else self.enabled


@dataclass(frozen=True)
class BuildConfig(_Checked):
    """Everything ``explorer build`` needs besides the input description."""

    # None: stages may use every core and differ run to run; an int: reproducible
    # (umap-learn and LargeVis then run single-threaded).
    seed: int | None = bounded(None, 0, 2**31 - 1)
    layouts: tuple[str, ...] = ("umap",)
    pca: PcaConfig = field(default_factory=PcaConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    umap: UmapConfig = field(default_factory=UmapConfig)
    largevis: LargeVisConfig = field(default_factory=LargeVisConfig)
    hmds: HmdsConfig = field(default_factory=HmdsConfig)
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    intrinsic: IntrinsicConfig = field(default_factory=IntrinsicConfig)
    outliers: OutlierConfig = field(default_factory=OutlierConfig)
    slices: SliceConfig = field(default_factory=SliceConfig)
    thumbs: ThumbConfig = field(default_factory=ThumbConfig)
    partitions: PartitionConfig = field(default_factory=PartitionConfig)

    @property
    def reproducible(self) -> bool:
        """Whether a seed was given, so that every stage must be deterministic."""
        return self.seed is not None

    def check(self) -> None:
        super().check()
        # No computed layout (--layouts none) is valid with an imported one (--layout):
        # the build checks that once it knows the input (pipeline.import_stage).
        for name in self.layouts:
            if name not in LAYOUTS:
                msg = f"--layouts: unknown layout {name!r}; choose from {', '.join(LAYOUTS)}"
                raise ConfigError(msg)
        if len(set(self.layouts)) != len(self.layouts):
            msg = f"--layouts lists a layout twice: {','.join(self.layouts)}"
            raise ConfigError(msg)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, _Checked):
                value.check()


def parse_layouts(text: str, *, lower: bool = True) -> tuple[str, ...]:
    """A comma list: ``"umap, largevis"`` -> ``("umap", "largevis")``."""
    parts = (part.strip() for part in text.split(","))
    return tuple(p.lower() if lower else p for p in parts if p)
