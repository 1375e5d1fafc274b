"""What the CLI prints is safe for a terminal: metadata's control characters are shown
escaped, never sent raw (a label could otherwise clear the screen or retitle the window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.cli import main
from explorer.cli.report import printable


def test_printable_escapes_controls_and_keeps_text() -> None:
    assert printable("plain ünïcode → ok") == "plain ünïcode → ok"
    assert printable("a\x1b[31mb\rc\u202ed\ne") == "a\\x1b[31mb\\x0dc\\u202ed\ne"


@pytest.mark.parametrize("command", ["info", "slices"])
def test_info_and_slices_never_print_escapes(
    command: str, hostile_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(hostile_store)]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert "\x07" not in out + err
    assert "\\x1b" in out  # shown, escaped
