from __future__ import annotations

from explorer.cli import main

raise SystemExit(main())
