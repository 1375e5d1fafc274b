"""Plain-text tables for the build summary and ``explorer info``."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from typing import IO, Any


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences,
    carriage returns, bidi overrides) shown as ``\\x1b`` / ``\\u202e``; newlines kept.

    Metadata is untrusted: a label holding ESC sequences could rewrite the user's screen.
    """
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return "".join(out)


def say(text: object = "", *, file: IO[str] | None = None) -> None:
    """``print`` for the CLI: everything it prints goes through ``printable``."""
    print(printable(str(text)), file=file if file is not None else sys.stdout)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB'."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_details(summary: dict[str, Any], limit: int = 70) -> str:
    """A stage summary as ``key=value`` pairs, short lists shown, long ones counted."""
    parts = []
    for key, value in summary.items():
        if isinstance(value, list | tuple | dict):
            value = f"[{len(value)}]"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Align columns; column indices in ``right`` are right-aligned."""
    rows = [[printable(str(c)) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
