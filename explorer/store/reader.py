"""Reading a store: read-only, arrays memory-mapped, refused when incomplete or damaged.

Opening checks the manifest (structure, format version), every file's size against it
and every declared file's header against the store contract (``format.STAGE_FILES``):
cheap ``stat`` calls and header reads, so opening costs milliseconds whatever the store's
size. ``Store.verify()`` also checks every file's SHA-256.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from explorer.errors import (
    StageMissingError,
    StoreCorruptError,
    StoreError,
)
from explorer.magnitude import SELECTION_EXACT_LIMIT, SelectionMagnitude, selection_magnitude
from explorer.store.contract import check_stage
from explorer.store.files import load_array, read_manifest
from explorer.store.format import (
    SELECTION_SUFFIX,
    SELECTIONS_DIR,
    SPRITE_SHEET,
    check_selection_name,
    data_id,
    error_values,
    selection_file,
)
from explorer.store.partition_reader import PartitionReader
from explorer.store.selections import read_selection_file
from explorer.store.writer import file_digest


class Store(PartitionReader):
    """A finished projection store, opened read-only.

    Arrays are memory-mapped, so opening costs milliseconds and many processes or
    sessions share one copy in the page cache. The partitioned points (``partitions``,
    ``partitions_in``, ``partition_frame``, ``partition_ddf``) come from
    ``PartitionReader``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        self._check_sizes()
        self._check_contract()

    def _check_sizes(self) -> None:
        for stage, record in self.manifest["stages"].items():
            for fname, info in record.get("files", {}).items():
                f = self.path / stage / fname
                if not f.exists():
                    msg = f"{f} is missing from the store; rebuild it"
                    raise StoreCorruptError(msg)
                if f.stat().st_size != info["bytes"]:
                    msg = (
                        f"{f} is {f.stat().st_size} bytes but the manifest says "
                        f"{info['bytes']}: truncated or changed; rebuild the store"
                    )
                    raise StoreCorruptError(msg)

    def _check_contract(self) -> None:
        """Every declared file's header against ``format.STAGE_FILES`` (dtype, shape, rows)."""
        dims = {"n": self.n_points}
        if isinstance(self.manifest.get("dim"), int):
            dims["d"] = int(self.manifest["dim"])
        for stage, record in self.manifest["stages"].items():
            check_stage(stage, self.path / stage, record["files"], dims, strict=False)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, n_points={self.n_points}, layouts={self.layouts})"

    # -- what is in it -------------------------------------------------------------
    @property
    def n_points(self) -> int:
        """Number of points."""
        return int(self.manifest["n_points"])

    @property
    def roles(self) -> dict[str, str | None]:
        """Column roles: id, label, prediction, loss, image, text (None when absent)."""
        return dict(self.manifest.get("roles", {}))

    @property
    def stages(self) -> list[str]:
        """Names of the stages in the store."""
        return list(self.manifest["stages"])

    def has_stage(self, name: str) -> bool:
        """Whether the store has the stage ``name``."""
        return name in self.manifest["stages"]

    def stage(self, name: str) -> dict[str, Any]:
        """A stage's record: parameters, versions, seconds, summary, files."""
        if name not in self.manifest["stages"]:
            msg = f"store {self.path} has no {name!r} stage; rebuild it with that stage"
            raise StageMissingError(msg)
        record: dict[str, Any] = self.manifest["stages"][name]
        return record

    def array(self, stage: str, stem: str) -> np.ndarray:
        """A stage's array, memory-mapped read-only."""
        info = self.stage(stage)["files"].get(f"{stem}.npy")
        if info is None:
            msg = f"stage {stage!r} of {self.path} has no array {stem!r}"
            raise StageMissingError(msg)
        return load_array(self.path / stage / f"{stem}.npy", expected_bytes=info["bytes"])

    def table_path(self, stage: str, stem: str) -> Path:
        """Path of a stage's Parquet table (for readers that want Arrow or single columns)."""
        if f"{stem}.parquet" not in self.stage(stage)["files"]:
            msg = f"stage {stage!r} of {self.path} has no table {stem!r}"
            raise StageMissingError(msg)
        return self.path / stage / f"{stem}.parquet"

    def table(self, stage: str, stem: str) -> pd.DataFrame:
        """A stage's table, read from Parquet."""
        return pd.read_parquet(self.table_path(stage, stem))

    # -- the public API --------------------------------------------------------------
    @functools.cached_property
    def points(self) -> pd.DataFrame:
        """The point table: the id column and all metadata, in input row order."""
        return self.table("validate", "points")

    def vectors(self, *, reduced: bool = True) -> NDArray[np.float32]:
        """The vectors (n, d) float32; the PCA-reduced ones when a pca stage ran."""
        if reduced and self.has_stage("pca"):
            return self.array("pca", "vectors")
        return self.array("validate", "vectors")

    @property
    def layouts(self) -> list[str]:
        """Names of the 2-D layouts present, e.g. ``['umap']``."""
        return list(self.manifest.get("layouts", {}))

    def layout(self, name: str) -> NDArray[np.float32]:
        """A layout's coordinates, (n, 2) float32."""
        return self._provided("layouts", name)

    def knn(self) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """The kNN graph: indices int32 (n, k) and distances float32 (n, k); column 0 is self."""
        return self.array("knn", "indices"), self.array("knn", "distances")

    @property
    def scores(self) -> list[str]:
        """Names of the per-point scores present, e.g. ``['trust:umap']``."""
        return list(self.manifest.get("scores", {}))

    def score(self, name: str) -> NDArray[np.float32]:
        """A per-point score, (n,) float32, e.g. ``store.score("trust:umap")``."""
        return self._provided("scores", name)

    def global_intrinsic_dimension(self) -> float:
        """The dataset's intrinsic dimension, bias-corrected (``global_mle`` is the raw MLE)."""
        summary = self.stage("intrinsic")["summary"]
        return float(summary.get("global_corrected", summary["global_mle"]))

    def magnitude(
        self, rows: NDArray[np.integer], *, max_exact: int = SELECTION_EXACT_LIMIT, seed: int = 0
    ) -> SelectionMagnitude:
        """Effective number of distinct points among ``rows`` (metric-space magnitude).

        At the outliers stage's scale t (the one the hierarchy's node magnitudes use): exact
        up to ``max_exact`` rows, above that extrapolated from a random sample of
        ``max_exact`` rows, as the result's ``sample_size`` and ``exact`` say.
        """
        t = float(self.stage("outliers")["summary"]["scale"])
        return selection_magnitude(self.vectors(), rows, t, max_exact=max_exact, seed=seed)

    # -- errors -------------------------------------------------------------------------
    @property
    def has_errors(self) -> bool:
        """Whether the build knew the errors (a label and a prediction, or a loss)."""
        return self.has_stage("errors")

    def errors(self) -> tuple[NDArray[np.int8], NDArray[np.float32] | None]:
        """Per point: the code (n,) int8 (1 wrong, 0 right, -1 unknown), and the loss
        (n,) float32 when the build had ``--loss`` (else None)."""
        files = self.stage("errors")["files"]
        loss = self.array("errors", "loss") if "loss.npy" in files else None
        return self.array("errors", "error"), loss

    def error_values(self) -> NDArray[np.float64]:
        """THE per-point error (n,) float64: the loss, or 1 wrong / 0 right; NaN unknown.

        An error rate is the mean over the known points, as in the slice table.
        """
        return error_values(*self.errors())

    # -- hierarchy and slices -----------------------------------------------------------
    def hierarchy(self) -> pd.DataFrame:
        """The cluster tree's nodes (DFS pre-order; node 0 is the root), one row each."""
        return self.table("hierarchy", "nodes")

    def node_members(self, node: int) -> NDArray[np.int64]:
        """Sorted row indices of a hierarchy node's points."""
        start, end = self.array("hierarchy", "start"), self.array("hierarchy", "end")
        if not 0 <= node < len(start):
            msg = f"store {self.path} has no hierarchy node {node} (0..{len(start) - 1})"
            raise StageMissingError(msg)
        order = self.array("hierarchy", "order")
        return np.sort(np.asarray(order[start[node] : end[node]], dtype=np.int64))

    @functools.cached_property
    def _slice_table(self) -> pd.DataFrame:
        table = self.table("slices", "slices")
        table.insert(0, "slice", np.arange(len(table), dtype=np.int64))
        return table

    def slices(self, kind: str | None = None) -> pd.DataFrame:
        """Slices ranked best-first: by the stored ``rank`` (a slice explained by a broader
        one never precedes it), else by failure evidence, then lift, then size.

        Columns include ``slice`` (the row in the stored table), ``name``, ``kind``
        (metadata, cluster, failure, embedding, saved), ``size``, ``errors``,
        ``error_rate``, ``lift``, ``lower_bound`` (the error rate's confidence bound,
        corrected for the number of slices tried), ``rank``, and ``parent_slice`` (the
        ``slice`` of the broader slice that explains this one, or -1).
        """
        table = self._slice_table
        saved = self._saved_sizes()
        if saved:
            extra = pd.DataFrame(
                {"slice": -1, "name": list(saved), "kind": "saved", "size": list(saved.values())}
            )
            table = pd.concat([table, extra], ignore_index=True)
        if kind is not None:
            table = table[table["kind"] == kind]
        if "rank" in table.columns:  # saved selections (no rank) go last
            ranked = table.sort_values("rank", na_position="last", kind="stable")
        else:  # stores written before slices had a rank
            ranked = table.sort_values(
                ["lower_bound", "lift", "size"], ascending=False, na_position="last", kind="stable"
            )
        return ranked.reset_index(drop=True)

    def _saved_sizes(self) -> dict[str, int]:
        sizes = {}
        for name in self.selections():
            try:
                sizes[name] = len(self.selection(name))
            except StoreError:
                continue  # replaced by a bad file or deleted since the listing
        return sizes

    def slice_members(self, name: str) -> NDArray[np.int64]:
        """Sorted int64 row indices of a slice, or of a saved selection of that name."""
        table = self._slice_table
        hit = table.index[table["name"] == name]
        if len(hit) == 0:
            return self.selection(name)
        i = int(table["slice"].iloc[hit[0]])
        offsets = self.array("slices", "offsets")
        members = self.array("slices", "members")
        return np.asarray(members[offsets[i] : offsets[i + 1]], dtype=np.int64)

    def _provided(self, kind: str, name: str) -> np.ndarray:
        table: dict[str, dict[str, str]] = self.manifest.get(kind, {})
        if name not in table:
            have = ", ".join(table) or "none"
            msg = f"store {self.path} has no {kind[:-1]} {name!r} (it has: {have})"
            raise StageMissingError(msg)
        where = table[name]
        return self.array(where["stage"], where["file"])

    # -- thumbnails ------------------------------------------------------------------
    @property
    def has_thumbnails(self) -> bool:
        """Whether image thumbnails were built."""
        return self.has_stage("thumbs")

    def thumbnail_cells(self) -> NDArray[np.int32]:
        """Per point its sprite cell (sheet * per_sheet + slot), or -1 without an image."""
        return self.array("thumbs", "cell")

    def sprite_sheet_path(self, sheet: int) -> Path:
        """Path of one sprite sheet PNG."""
        return self.path / "thumbs" / SPRITE_SHEET.format(sheet)

    # -- saved selections --------------------------------------------------------------
    @property
    def data_id(self) -> str:
        """Fingerprint of the data this store was built from (saved selections carry it)."""
        return data_id(self.manifest)

    def _selection_files(self) -> list[Path]:
        folder = self.path / SELECTIONS_DIR
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def _scan_selections(self) -> tuple[list[str], list[str]]:
        good, problems = [], []
        for path in self._selection_files():
            if path.suffix != SELECTION_SUFFIX:
                problems.append(f"{path} is not a saved selection of this explorer; skipped")
                continue
            try:
                check_selection_name(path.stem)
                read_selection_file(path, self.data_id, self.n_points, rows=False)
            except ValueError:
                problems.append(f"{path} has an invalid selection name; skipped")
            except FileNotFoundError:
                continue  # deleted meanwhile
            except StoreError as exc:
                problems.append(str(exc))
            else:
                good.append(path.stem)
        return good, problems

    def selections(self) -> list[str]:
        """Names of the readable selections saved into this store, sorted.

        A bad file in ``selections/`` (unreadable, or saved on other data) is left out;
        ``selection_problems()`` says which and why.
        """
        return self._scan_selections()[0]

    def selection_problems(self) -> list[str]:
        """One line per file in ``selections/`` that is skipped, saying why."""
        return self._scan_selections()[1]

    def selection(self, name: str) -> NDArray[np.int64]:
        """A saved selection's sorted int64 row indices (refused if made on other data)."""
        try:
            rel = selection_file(check_selection_name(name))
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        path = self.path / rel
        try:
            return read_selection_file(path, self.data_id, self.n_points)
        except FileNotFoundError:
            have = ", ".join(self.selections()) or "none"
            msg = (
                f"store {self.path} has no slice or saved selection {name!r} "
                f"(saved: {have}; `explorer slices` lists the slices)"
            )
            raise StageMissingError(msg) from None

    # -- integrity -----------------------------------------------------------------------
    def verify(self) -> None:
        """Check every file's SHA-256 against the manifest; raise StoreCorruptError if not."""
        for stage, record in self.manifest["stages"].items():
            for fname, info in record.get("files", {}).items():
                f = self.path / stage / fname
                try:
                    digest = file_digest(f)
                except OSError as exc:
                    msg = f"{f} cannot be read ({exc.strerror}); check it, or rebuild the store"
                    raise StoreCorruptError(msg) from exc
                if digest != info.get("sha256"):
                    msg = f"{f} does not match its checksum in the manifest; rebuild the store"
                    raise StoreCorruptError(msg)
