from __future__ import annotations

from explorer.cli import main

# Guarded: a process started with "spawn" (a Dask LocalCluster's workers under
# ``explorer serve --dask local:N``) imports this module again and must not run the CLI.
if __name__ == "__main__":
    raise SystemExit(main())
