"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from explorer.config import BuildConfig, UmapConfig

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Metadata is untrusted: the app must show this as text, never run it.
XSS = "<script>window.__pwned=1</script>"

# Hostile category labels and column names (a store made by someone else is untrusted).
HOSTILE_LABELS = (
    '<img src=x onerror="window.__pwned=1">',
    '"><script>window.__pwned=1</script>',
)
HOSTILE_COLUMN = '<img src=x onerror="window.__pwned=2">'
# Terminal escapes: clear the screen, set the window title, then red text.
TERMINAL_LABELS = ("\x1b[2J\x1b[Hcleared", "\x1b]0;pwned\x07title", "\x1b[31mred")
TERMINAL_COLUMN = "\x1b[1mbold column"

# Few UMAP epochs keep the shared stores quick; the layouts are still meaningful.
TINY_CONFIG = BuildConfig(seed=0, umap=UmapConfig(n_epochs=60))


def write_vectors_parquet(path: Path, vectors: np.ndarray, meta: pd.DataFrame) -> Path:
    """A Parquet file with metadata columns and a fixed-size-list column ``vector``."""
    table = pa.Table.from_pandas(meta, preserve_index=False)
    flat = pa.array(np.asarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    table = table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))
    pq.write_table(table, path)
    return path


def tiny_data(seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """600 points: three labelled 8-D blobs (one sparser) and one planted far outlier."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 8, [10.0] + [0.0] * 7, [0.0, 10.0] + [0.0] * 6])
    sizes = [250, 200, 149]
    parts = [
        rng.normal(c, s, size=(m, 8)) for c, s, m in zip(centres, [1, 1, 2], sizes, strict=True)
    ]
    vectors = np.vstack([*parts, np.full((1, 8), 40.0)]).astype(np.float32)
    label = np.array(["a"] * 250 + ["b"] * 200 + ["c"] * 149 + ["c"])
    wrong = rng.random(600) < np.where(label == "b", 0.3, 0.02)
    prediction = np.where(wrong, np.where(label == "a", "b", "a"), label)
    meta = pd.DataFrame(
        {
            "pid": [f"p{i:03d}" for i in range(600)],
            "label": label,
            "prediction": prediction,
            "size": rng.uniform(0, 1, 600).round(3),
            "note": [
                "<script>window.__pwned=1</script>" if i % 50 == 0 else f"point {i}"
                for i in range(600)
            ],
            "image": [f"img/{i:03d}.png" for i in range(600)],
        }
    )
    return vectors, meta


def run_cli(
    args: Sequence[str], cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m explorer ARGS`` in a subprocess and capture its output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def hostile_data(n: int = 120, seed: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """Two 4-D blobs whose labels, predictions and one column's name are HTML payloads."""
    rng = np.random.default_rng(seed)
    half = n // 2
    vectors = np.vstack(
        [rng.normal(0.0, 1.0, (half, 4)), rng.normal(8.0, 1.0, (n - half, 4))]
    ).astype(np.float32)
    label = np.array([HOSTILE_LABELS[0]] * half + [HOSTILE_LABELS[1]] * (n - half), dtype=object)
    prediction = label.copy()
    prediction[::7] = "ok"
    prediction[3::11] = None  # unknown: neither right nor wrong
    meta = pd.DataFrame(
        {
            "pid": [f"h{i:03d}" for i in range(n)],
            "label": label,
            "prediction": prediction,
            HOSTILE_COLUMN: rng.choice(["=1+1", "<b>bold</b>", "plain"], n),
            TERMINAL_COLUMN: rng.choice(TERMINAL_LABELS, n),
            "score": rng.uniform(0, 1, n).round(3),
        }
    )
    return vectors, meta
