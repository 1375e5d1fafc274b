"""``explorer serve STORE`` and ``explorer demo``: the app on a local or team server.

Panel is imported only when a command runs, so ``explorer --help`` stays instant. The demo
builds its sample store in a subprocess (``python -m explorer sample`` / ``build``): the
serve side never imports the pipeline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from explorer.errors import ConfigError, InputError, StoreError

LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "::1")
PASSWORD_ENV = "EXPLORER_PASSWORD"
DEMO_STORE = Path("sample_data/digits.store")
DEMO_LAYOUTS = "umap,largevis,hmds"  # as the Makefile's store target


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5006, help="port to listen on (default: 5006)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for a team)",
    )
    p.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a host name browsers use to reach the server (repeatable), e.g. myhost:5006",
    )
    p.add_argument(
        "--num-procs", type=int, default=1, metavar="N", help="server processes (default: 1)"
    )
    auth = p.add_mutually_exclusive_group()
    auth.add_argument(
        "--basic-auth",
        type=Path,
        metavar="FILE",
        help='a JSON file of {"user": "password"} pairs: every visitor must log in',
    )
    auth.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"a file whose first line is one shared password for every visitor (or set "
        f"{PASSWORD_ENV})",
    )
    auth.add_argument(
        "--password",
        metavar="PW",
        help="one shared password on the command line: other local users can read it; "
        f"prefer --password-file or {PASSWORD_ENV}",
    )
    p.add_argument(
        "--show",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="open a browser tab (default: --show)",
    )


def add_serve_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``serve`` and ``demo`` on the ``explorer`` command's subparsers."""
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="open the app on a store",
        description="Serve the explorer app on a projection store (read-only, shared by all "
        "sessions). Binds to 127.0.0.1 unless --address says otherwise.",
    )
    p.add_argument("store", type=Path, help="a store written by explorer build")
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="keep the points on a Dask cluster: a scheduler's address (tcp://host:8786, "
        "every worker sees the store at the same path) or local:N to start N local workers",
    )
    _add_server_options(p)
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="build the digits sample store if needed, then serve it",
    )
    p.add_argument(
        "--store", type=Path, default=DEMO_STORE, help=f"where the sample store is ({DEMO_STORE})"
    )
    _add_server_options(p)


def _read_password_file(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        msg = f"--password-file {path}: no such file"
        raise InputError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"--password-file {path} cannot be read ({type(exc).__name__})"
        raise InputError(msg) from exc
    return lines[0].strip("\r\n") if lines else ""


def _auth(args: argparse.Namespace) -> str | dict[str, str] | None:
    """Credentials from --basic-auth (checked now), a password file, env or --password."""
    from explorer.app.serving import load_credentials

    if args.basic_auth is not None:
        return load_credentials(args.basic_auth)
    source, password = "--password", args.password
    if args.password_file is not None:
        source, password = "--password-file", _read_password_file(args.password_file)
    elif password is None and os.environ.get(PASSWORD_ENV) is not None:
        source, password = PASSWORD_ENV, os.environ[PASSWORD_ENV]
    elif password is not None:
        print(
            "explorer: warning: --password is visible to every local user (ps, /proc); "
            f"use --password-file FILE or the {PASSWORD_ENV} environment variable",
            file=sys.stderr,
        )
    if password is not None and not password:
        msg = f"{source} gives an empty password; give a password or leave it out"
        raise ConfigError(msg)
    return password


def _check_options(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        msg = f"--port {args.port} is not a port number (0-65535)"
        raise ConfigError(msg)
    if args.num_procs < 1:
        msg = f"--num-procs {args.num_procs}: use 1 or more"
        raise ConfigError(msg)


def run_server(store: Path, args: argparse.Namespace) -> int:
    """Serve ``store`` with the options in ``args`` until Ctrl-C."""
    from explorer.store.reader import Store

    _check_options(args)
    dask = getattr(args, "dask", None)
    from explorer.app.process import check_dask_options

    check_dask_options(dask, args.num_procs)
    auth = _auth(args)
    opened = Store(store)  # a clear error now rather than in the first session
    if args.address not in LOCAL_ADDRESSES and auth is None:
        print(
            f"explorer: warning: serving on {args.address} without --basic-auth or "
            "--password: anyone who can reach this port can see the data",
            file=sys.stderr,
        )
    from explorer.app.server import serve

    if args.address in LOCAL_ADDRESSES:
        host = "localhost"
    elif args.address in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    else:
        host = args.address
    print(f"Serving {store} ({opened.n_points:,} points) at http://{host}:{args.port}/")
    if dask is not None:
        print(f"The points live on the Dask cluster {dask} (starting it may take a while).")
    if args.address not in LOCAL_ADDRESSES and not args.allow_websocket_origin:
        print(
            "Browsers must use that host name (or localhost); for another one (a proxy, an "
            "alias) add --allow-websocket-origin NAME:PORT."
        )
    print("Press Ctrl-C to stop.")
    cookie_secret = os.environ.get("EXPLORER_COOKIE_SECRET") or secrets.token_urlsafe(32)
    try:
        serve(
            store,
            port=args.port,
            address=args.address,
            show=args.show,
            websocket_origin=args.allow_websocket_origin or None,
            num_procs=args.num_procs,
            basic_auth=auth,
            cookie_secret=cookie_secret,
            dask=getattr(args, "dask", None),
        )
    except KeyboardInterrupt:
        print("\nstopped")
    finally:
        from explorer.app.process import close_all_clusters

        close_all_clusters()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """explorer serve STORE [--port] [--address] [--basic-auth FILE | --password PW]."""
    return run_server(args.store, args)


def _run(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "explorer", *argv], check=False)
    if result.returncode != 0:
        msg = f"'explorer {argv[0]}' failed (exit {result.returncode}); see its message above"
        raise StoreError(msg)


def build_demo_store(store: Path) -> None:
    """Write the digits sample beside ``store`` and build ``store`` from it (subprocesses)."""
    sample = store.parent / "digits"
    data = sample / "digits.parquet"
    if not data.exists():
        _run(["sample", "--out", str(sample)])
    print(f"Building the sample store {store} (about a minute the first time)…")
    _run([
        "build", str(data), "--out", str(store), "--id", "id", "--label", "label",
        "--prediction", "prediction", "--image-col", "image", "--image-root", str(sample),
        "--layouts", DEMO_LAYOUTS, "--seed", "0",
    ])  # fmt: skip


def cmd_demo(args: argparse.Namespace) -> int:
    """explorer demo [--store PATH]: build the digits sample store if needed, then serve it."""
    from explorer.store.format import MANIFEST

    if not (args.store / MANIFEST).exists():
        build_demo_store(args.store)
    return run_server(args.store, args)
