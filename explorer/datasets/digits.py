"""The digits sample: scikit-learn's 1,797 handwritten digits, embedded by a small MLP.

Real, offline and made in seconds: the vectors are the hidden layer of a classifier
trained on half of the images, the predictions are its own (so failure slices show its
real confusions), and each 8×8 image is written as a PNG for thumbnails.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

HIDDEN_UNITS = 32


def _embed(seed: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = digits.data / 16.0
    y = digits.target
    rows = np.arange(len(y))
    train, _ = train_test_split(rows, train_size=0.5, stratify=y, random_state=seed)
    is_train = np.zeros(len(y), dtype=bool)
    is_train[train] = True
    model = MLPClassifier(
        hidden_layer_sizes=(HIDDEN_UNITS,), max_iter=60, alpha=1e-3, random_state=seed
    )
    with warnings.catch_warnings():
        # Stopped early on purpose: a slightly weaker model makes more real confusions.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x[is_train], y[is_train])
    hidden = np.maximum(x @ model.coefs_[0] + model.intercepts_[0], 0.0).astype(np.float32)
    proba = model.predict_proba(x)
    prediction = proba.argmax(axis=1)
    table = pd.DataFrame(
        {
            "id": [f"digit-{i:04d}" for i in rows],
            "image": [f"images/{i:04d}.png" for i in rows],
            "label": y.astype(str),
            "prediction": prediction.astype(str),
            "correct": prediction == y,
            "confidence": proba.max(axis=1).astype(np.float32),
            "loss": (-np.log(np.clip(proba[rows, y], 1e-12, 1.0))).astype(np.float32),
            "split": np.where(is_train, "train", "test"),
            "ink": x.mean(axis=1).astype(np.float32),
        }
    )
    return hidden, table, digits.images


def make_digits_sample(out_dir: str | Path, seed: int = 0) -> Path:
    """Write ``digits.parquet`` and ``images/*.png`` under ``out_dir``; return the Parquet path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    vectors, table, images = _embed(seed)
    for i, img in enumerate(images):
        pixels = (255 - np.round(img * (255.0 / 16.0))).astype(np.uint8)  # dark ink on white
        Image.fromarray(pixels, mode="L").save(out / "images" / f"{i:04d}.png")
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    arrow = arrow.append_column("embedding", pa.FixedSizeListArray.from_arrays(flat, HIDDEN_UNITS))
    path = out / "digits.parquet"
    pq.write_table(arrow, path)
    return path
