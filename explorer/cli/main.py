"""Command line: ``explorer build | info | export | synth | sample | serve | demo``.

``explorer.cli`` is the only package that prints or exits. An ``ExplorerError`` becomes
one line on stderr and exit code 2; ``--debug`` shows the traceback instead. Heavy
imports are lazy, so ``explorer --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explorer.cli.report import say
from explorer.errors import ExplorerError
from explorer.version import __version__

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
An explorer for embedding datasets.

  explorer build vectors.parquet --out my.store    compute everything the app needs
  explorer info my.store                           what a store holds
  explorer export my.store --slice NAME --out x.parquet
  explorer synth --n 1000000 --out big.parquet     synthetic data for scale tests
  explorer sample --out sample_data/digits         the digits sample dataset
  explorer serve my.store                          open the app on a store
  explorer demo                                    build the sample store and serve it
"""


def _add_build(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "build",
        parents=[common],
        help="build a projection store from vectors and metadata",
        description=(
            "Read vectors (.npy, .parquet, .csv, .h5ad) and metadata, compute the kNN graph, "
            "layouts and scores, and write a projection store. Rerunning the same command "
            "resumes an interrupted build."
        ),
    )
    p.add_argument("input", type=Path, help="vectors file: .npy, .parquet, .csv or .h5ad")
    p.add_argument("--out", type=Path, required=True, help="the store directory to write")
    g = p.add_argument_group("input columns")
    g.add_argument(
        "--vectors",
        metavar="COL",
        help="Parquet: the list column of vectors; CSV: the prefix of the vector columns; "
        ".h5ad: an .obsm key (default: .X). Default: the only list column, or all numeric ones",
    )
    g.add_argument("--meta", type=Path, metavar="FILE", help="metadata CSV/Parquet, same row order")
    g.add_argument("--id", metavar="COL", help="the id column (default: row numbers)")
    g.add_argument("--label", metavar="COL", help="the true label column (failure slices)")
    pred = g.add_mutually_exclusive_group()
    pred.add_argument("--prediction", metavar="COL", help="the model's prediction column")
    pred.add_argument("--loss", metavar="COL", help="a per-point loss (or error) column")
    g.add_argument("--image-col", metavar="COL", help="column of image paths (thumbnails)")
    g.add_argument("--image-root", type=Path, metavar="DIR", help="folder the image paths are in")
    g.add_argument("--text-col", metavar="COL", help="a text column shown in previews")
    g.add_argument(
        "--layout",
        action="append",
        default=[],
        metavar="NAME=COLX,COLY",
        help="import a precomputed 2-D layout from two columns (or NAME=obsm:KEY, e.g. "
        "obsm:X_umap, from an .h5ad input); repeatable; with --layouts none nothing is computed",
    )
    c = p.add_argument_group("computation")
    c.add_argument(
        "--layouts",
        default="umap",
        help="comma list of: umap, largevis, hmds, or none (with --layout) (default: umap)",
    )
    c.add_argument(
        "--partition",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also store the points as Parquet parts tiled by each layout, for serving on "
        "Dask (default: on from 2,000,000 points)",
    )
    c.add_argument(
        "--partition-rows",
        type=int,
        metavar="N",
        help="points per part (default: n/16, within 250,000-2,000,000)",
    )
    c.add_argument(
        "--metric",
        default="euclidean",
        choices=["euclidean", "cosine"],
        help="distance between vectors (default: euclidean)",
    )
    c.add_argument(
        "--neighbors",
        type=int,
        default=15,
        metavar="K",
        help="kNN size, the point itself included (default: 15)",
    )
    c.add_argument("--pca", type=int, metavar="N", help="first reduce the vectors to N dimensions")
    c.add_argument(
        "--seed",
        type=int,
        help="make the build reproducible: the same seed gives the same store (default: "
        "none, which lets UMAP and LargeVis use every core)",
    )
    c.add_argument("--knn-iters", type=int, metavar="N", help="NN-descent iterations")
    c.add_argument("--knn-candidates", type=int, metavar="N", help="NN-descent candidates")
    c.add_argument("--knn-trees", type=int, metavar="N", help="random projection trees")
    c.add_argument(
        "--knn-build-factor",
        type=float,
        metavar="F",
        help="NN-descent keeps F×K candidates and returns the nearest K; raise it for a "
        "better recall (default: 2 up to 200k points, 3 above)",
    )
    c.add_argument(
        "--slice-ignore",
        default="",
        metavar="COLS",
        help="comma list of metadata columns not to slice on (columns that determine the "
        "error, like a `correct` flag, are found and left out automatically)",
    )
    c.add_argument("--umap-min-dist", type=float, default=0.1, help="UMAP min_dist (default: 0.1)")
    c.add_argument("--umap-epochs", type=int, metavar="N", help="UMAP epochs (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_build_dask(p)


def _add_build_dask(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("building on a Dask cluster")
    d.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the stages that grow with n (pca, knn, umap, largevis, trust, intrinsic, "
        "outliers) "
        "on the Dask scheduler at ADDRESS (tcp://host:8786), or local:N to start N local "
        "workers; the store is the same files",
    )
    d.add_argument(
        "--dask-layout-sample",
        type=int,
        default=1_000_000,
        metavar="N",
        help="with --dask: above N points fit UMAP and LargeVis on N sampled points and "
        "place the rest (default: 1000000)",
    )
    d.add_argument(
        "--dask-shard-rows",
        type=int,
        default=100_000,
        metavar="N",
        help="with --dask: rows per task (default: 100000)",
    )


def _add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_build(sub, common)
    p = sub.add_parser("info", parents=[common], help="summarise a store")
    p.add_argument("store", type=Path)
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--verify", action="store_true", help="also check every file's checksum")

    p = sub.add_parser("slices", parents=[common], help="list a store's slices, best first")
    p.add_argument("store", type=Path)
    p.add_argument(
        "--kind",
        choices=["metadata", "cluster", "failure", "embedding", "saved"],
        help="only slices of this kind",
    )
    p.add_argument("--top", type=int, default=25, help="how many rows (default: 25)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the whole table as CSV")

    p = sub.add_parser(
        "export",
        parents=[common],
        help="write a subset of points (ids + metadata) to a file",
    )
    p.add_argument("store", type=Path)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", type=Path, metavar="FILE", help="ids, one per line")
    which.add_argument("--slice", metavar="NAME", help="a saved selection or slice")
    which.add_argument("--all", action="store_true", help="every point")
    p.add_argument(
        "--format",
        choices=["parquet", "csv", "jsonl", "h5ad"],
        help="default: from --out; h5ad for stores built from .h5ad",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--coords", metavar="LAYOUT", action="append", default=[], help="add x/y")
    p.add_argument("--vectors", action="store_true", help="add the vectors")
    p.add_argument(
        "--errors", action="store_true", help="add each point's error (wrong/right/unknown)"
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="CSV: write text cells as they are (by default a cell a spreadsheet would run "
        "as a formula, starting with = + - @ tab or CR, gets a leading ')",
    )

    p = sub.add_parser(
        "synth",
        parents=[common],
        help="write a synthetic Gaussian mixture with metadata",
    )
    p.add_argument(
        "--n", type=float, default=100_000, help="number of points, e.g. 1e6 (default: 1e5)"
    )
    p.add_argument("--dim", type=int, default=64, help="dimensions (default: 64)")
    p.add_argument("--clusters", type=int, default=20, help="clusters (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", type=Path, required=True, help=".parquet or .npy")

    p = sub.add_parser("sample", parents=[common], help="write the digits sample dataset")
    p.add_argument("--out", type=Path, default=Path("sample_data/digits"))

    from explorer.cli.serve import add_serve_commands

    add_serve_commands(sub, common)


def make_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    # --debug works before or after the command; SUPPRESS keeps a subcommand's default
    # from overwriting a --debug given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
    )
    parser = argparse.ArgumentParser(
        prog="explorer",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"explorer {__version__}")
    _add_commands(parser, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``explorer`` command."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return _dispatch(args)
    except ExplorerError as exc:
        if args.debug:
            raise
        say(f"explorer: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(
            "\nexplorer: interrupted; finished stages are kept: rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command in ("serve", "demo"):
        from explorer.cli import serve as commands
    else:
        from explorer.cli import commands  # type: ignore[no-redef]

    handler = getattr(commands, f"cmd_{args.command}")
    result: int = handler(args)
    return result
