"""docs/notebook.ipynb, the worked example, runs clean in a real kernel (nbclient, headless).

Its cells assert their own known answers (200 points labelled b, the callback's counts).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def test_docs_notebook_runs_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No user kernelspecs: "python3" is this venv's ipykernel, which imports this checkout.
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    nb = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    text = {
        i: "".join(out.get("text", "") for out in cell.get("outputs", []))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
    }
    printed = "\n".join(text.values())
    assert "200 selected" in printed
    assert "202 selected" in printed
    assert "colour: size" in printed
    assert "cannot colour by 'no such column': choose one of" in printed
    assert "[200, 3]" in printed
    # The app cell displays the app (Panel's notebook output), not just a repr.
    shown = next(cell for cell in nb.cells if "explorer.show(store)" in cell.source)
    kinds = {key for out in shown.outputs for key in out.get("data", {})}
    assert "application/vnd.holoviews_exec.v0+json" in kinds, kinds
