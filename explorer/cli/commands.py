"""The subcommands' bodies. Heavy libraries are imported inside each command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from explorer.cli.report import format_details, human_bytes, say
from explorer.cli.report import table as table_fmt
from explorer.errors import InputError


def _build_config(args: argparse.Namespace) -> Any:
    from explorer.config import (
        BuildConfig,
        KnnConfig,
        PartitionConfig,
        PcaConfig,
        SliceConfig,
        UmapConfig,
        parse_layouts,
    )

    none = args.layouts.strip().lower() == "none"
    return BuildConfig(
        seed=args.seed,
        layouts=() if none else parse_layouts(args.layouts),
        partitions=PartitionConfig(enabled=args.partition, rows_per_part=args.partition_rows),
        pca=PcaConfig(n_components=args.pca),
        knn=KnnConfig(
            n_neighbors=args.neighbors,
            metric=args.metric,
            n_iters=args.knn_iters,
            max_candidates=args.knn_candidates,
            n_trees=args.knn_trees,
            build_factor=args.knn_build_factor,
        ),
        umap=UmapConfig(min_dist=args.umap_min_dist, n_epochs=args.umap_epochs),
        slices=SliceConfig(ignore=parse_layouts(args.slice_ignore, lower=False)),
    )


def cmd_build(args: argparse.Namespace) -> int:
    """explorer build INPUT --out STORE."""
    from explorer.ingest.dataset import InputSpec, LayoutSource
    from explorer.pipeline.runner import build_store

    try:
        layouts = tuple(LayoutSource.parse(text) for text in args.layout)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    spec = InputSpec(
        layouts=layouts,
        path=args.input,
        vectors=args.vectors,
        meta=args.meta,
        id=args.id,
        label=args.label,
        prediction=args.prediction,
        loss=args.loss,
        image_col=args.image_col,
        image_root=args.image_root,
        text_col=args.text_col,
    )
    config = _build_config(args)
    report = build_store(spec, args.out, config, show_progress=not args.quiet)
    rows = [
        [
            s.name,
            s.status,
            f"{s.seconds:.1f}",
            str(s.n_files),
            human_bytes(s.n_bytes),
            format_details(s.summary),
        ]
        for s in report.stages
    ]
    say(f"\nBuilt {report.store}: {report.n_points:,} points × {report.dim} dims")
    say(table_fmt(["stage", "status", "seconds", "files", "size", "details"], rows, {2, 3, 4}))
    say(f"total {report.seconds:.1f} s")
    for note in report.notes:
        say(f"note: {note}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """explorer info STORE [--json] [--verify]."""
    from explorer.store.reader import Store

    store = Store(args.store)
    _warn_selection_problems(store)
    if args.verify:
        store.verify()
    if args.json:
        out = {**store.manifest, "selections": store.selections()}
        say(json.dumps(out, indent=2, sort_keys=True, default=str))
        return 0
    m = store.manifest
    size = sum(f.stat().st_size for f in store.path.rglob("*") if f.is_file())
    say(
        f"Store    {store.path}  ({human_bytes(size)}, format {m['format_version']}, "
        f"explorer {m['explorer_version']}, built {m['created']})"
    )
    src = m["source"]
    say(f"Points   {store.n_points:,} × {m['dim']}  from {src['path']}")
    roles = {v: k for k, v in store.roles.items() if v}
    cols = [f"{c} ({roles[c]})" if c in roles else c for c in store.points.columns]
    say(f"Columns  {', '.join(cols)}")
    say(f"Layouts  {', '.join(store.layouts) or 'none'}")
    scores = [f"{name} (mean {float(store.score(name).mean()):.3f})" for name in store.scores]
    say(f"Scores   {', '.join(scores) or 'none'}")
    if store.has_stage("knn"):
        k = store.stage("knn")["summary"]
        say(
            f"kNN      k={k.get('n_neighbors')} {k.get('metric')}, {k.get('method')}, "
            f"recall {k.get('recall')}"
        )
    say(f"Saved    {', '.join(store.selections()) or 'no saved selections'}")
    for line in _analytics_report(store):
        say(line)
    if args.verify:
        say("Verified every file's checksum.")
    rows = [
        [name, f"{rec['seconds']:.1f}", format_details(rec.get("summary", {}), 80)]
        for name, rec in m["stages"].items()
    ]
    say()
    say(table_fmt(["stage", "seconds", "details"], rows, {1}))
    return 0


def _warn_selection_problems(store: Any) -> None:
    for problem in store.selection_problems():
        say(f"explorer: warning: {problem}", file=sys.stderr)


def _slice_rows(table: Any) -> list[list[str]]:
    def num(value: Any, fmt: str) -> str:
        return "" if value != value else format(value, fmt)  # NaN -> blank

    def name(r: Any) -> str:
        # "↳": explained by a broader slice listed above it (its parent_slice)
        parent = r.get("parent_slice", -1)
        related = parent == parent and int(parent) >= 0  # NaN for saved selections
        return ("↳ " if related else "") + str(r["name"])[:60]

    return [
        [
            name(r),
            str(r["kind"]),
            f"{int(r['size']):,}",
            num(r.get("error_rate", float("nan")), ".1%"),
            num(r.get("lift", float("nan")), ".2f"),
            num(r.get("lower_bound", float("nan")), ".1%"),
        ]
        for _, r in table.iterrows()
    ]


def cmd_slices(args: argparse.Namespace) -> int:
    """explorer slices STORE: the ranked slice table."""
    from explorer.store.reader import Store

    store = Store(args.store)
    _warn_selection_problems(store)
    table = store.slices(kind=args.kind)
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
        say(f"wrote {len(table):,} slices to {args.csv}")
        return 0
    head = ["slice", "kind", "size", "error rate", "lift", "lower bound"]
    say(table_fmt(head, _slice_rows(table.head(args.top)), {2, 3, 4, 5}))
    if len(table) > args.top:
        say(f"… {len(table) - args.top} more (--top N, or --csv FILE for all)")
    return 0


def _analytics_report(store: Any) -> list[str]:
    lines = []
    if store.has_stage("intrinsic"):
        s = store.stage("intrinsic")["summary"]
        lines.append(
            f"Intrinsic dimension  {s.get('global_corrected', float('nan')):.1f} "
            f"(bias-corrected), {s['global_mle']:.1f} (MLE), {s['twonn']:.1f} (TwoNN); "
            f"local 10-90%: {s['p10_local']:.1f}-{s['p90_local']:.1f} "
            "(local and raw estimates read low at high dimension)"
        )
    if store.has_stage("outliers"):
        s = store.stage("outliers")["summary"]
        ids = store.points.iloc[s["top_rows"][:5], 0].astype(str).tolist()
        corr = s.get("spearman_vs_exact", float("nan"))
        lines.append(
            f"Outliers             points and groups; local score t={s['scale']:.3g}, "
            f"Spearman {corr:.3f} with exact weights; top: {', '.join(ids)}"
        )
    if store.has_stage("hierarchy"):
        s = store.stage("hierarchy")["summary"]
        nodes = store.hierarchy()
        top = nodes[nodes["parent"] == 0].sort_values("size", ascending=False)
        names = ", ".join(f"{r['name']} ({r['size']:,})" for _, r in top.head(4).iterrows())
        lines.append(
            f"Hierarchy            {s['n_nodes']:,} nodes, depth {s['max_depth']}, "
            f"{s['root_children']} top clusters: {names}"
        )
    if store.has_stage("slices"):
        failures = store.slices()
        failures = failures[failures["kind"] != "saved"].head(5)
        lines.append("Top slices")
        head = ["slice", "kind", "size", "error rate", "lift", "lower bound"]
        lines.append(table_fmt(head, _slice_rows(failures), {2, 3, 4, 5}))
    return lines


def _export_rows(store: Any, args: argparse.Namespace) -> Any:
    import numpy as np

    from explorer.store.export import read_id_file, rows_for_ids

    if args.all:
        return np.arange(store.n_points, dtype=np.int64)
    if args.ids is not None:
        ids = read_id_file(args.ids, store.roles.get("id") or str(store.points.columns[0]))
        if not ids:
            msg = f"{args.ids} holds no ids"
            raise InputError(msg)
        return rows_for_ids(store, ids)
    return store.slice_members(args.slice)


def cmd_export(args: argparse.Namespace) -> int:
    """explorer export STORE --ids FILE|--slice NAME|--all --out FILE."""
    from explorer.store.export import FORMATS, check_out_path, export_rows
    from explorer.store.reader import Store

    fmt = args.format or args.out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        msg = f"cannot tell the format from {args.out.name}; add --format {'|'.join(FORMATS)}"
        raise InputError(msg)
    check_out_path(args.out)
    store = Store(args.store)
    for name in args.coords:
        store.layout(name)  # a clear error for an unknown layout, before writing
    rows = _export_rows(store, args)
    n = export_rows(
        store,
        rows,
        args.out,
        fmt,
        layouts=tuple(args.coords),
        vectors=args.vectors,
        errors=args.errors,
        raw=args.raw,
    )
    say(f"wrote {n:,} rows to {args.out}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    """explorer synth --n N --dim D --out FILE."""
    import numpy as np

    from explorer.datasets.synth import synth_mixture
    from explorer.store.atomic import write_bytes_atomic

    n = int(args.n)
    if n < 5 or args.dim < 1:
        msg = "--n must be at least 5 and --dim at least 1"
        raise InputError(msg)
    suffix = args.out.suffix.lower()
    if suffix not in (".parquet", ".npy"):
        msg = f"--out {args.out.name}: use a .parquet or .npy file name"
        raise InputError(msg)
    vectors, meta = synth_mixture(n, args.dim, n_clusters=args.clusters, seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, vectors, allow_pickle=False)
        write_bytes_atomic(args.out, buf.getvalue())
    else:
        _write_vectors_parquet(vectors, meta, args.out)
    say(f"wrote {n:,} × {args.dim} points to {args.out}")
    return 0


def _write_vectors_parquet(vectors: Any, meta: Any, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(meta, preserve_index=False)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    arrow = arrow.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))
    tmp = out.with_name(f".tmp-{out.name}")
    pq.write_table(arrow, tmp)
    tmp.replace(out)


def cmd_sample(args: argparse.Namespace) -> int:
    """explorer sample --out DIR: the digits sample dataset."""
    from explorer.datasets.digits import make_digits_sample

    path = make_digits_sample(args.out)
    say(f"wrote the digits sample to {path} (images in {path.parent / 'images'})")
    return 0
