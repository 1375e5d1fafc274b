"""Small data sets with planted answers, for the slice and naming tests and benchmarks.

:func:`planted_subgroup`: labelled blobs where one metadata value (``scanner=B``) marks a
degraded subgroup: its points err 40% of the time (others 5%) and sit slightly apart in
every blob, so clusters and embedding regions find *subsets* of it.
:func:`planted_topics`: short texts on planted topics over a shared corpus vocabulary,
with vectors that group them by topic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

GROUP_COLUMN, GROUP_VALUE = "scanner", "B"
TOPICS = ("diffusion", "protein", "robot", "galaxy", "vaccine")
# Words every topic's documents use: a corpus-level name would repeat them everywhere.
_CORPUS = ("data", "model", "models", "learning", "results", "method", "datasets")
_TOPIC_WORDS = {
    "diffusion": ("denoising", "sampling", "image", "score", "noise", "generation"),
    "protein": ("folding", "structure", "residue", "binding", "sequence", "enzyme"),
    "robot": ("grasping", "control", "manipulation", "policy", "motion", "arm"),
    "galaxy": ("telescope", "redshift", "stellar", "survey", "cluster", "spectra"),
    "vaccine": ("immune", "trial", "antibody", "dose", "response", "cohort"),
}


def planted_subgroup(
    n: int = 3000, group_size: int = 185, *, dim: int = 16, n_classes: int = 6, seed: int = 0
) -> tuple[NDArray[np.float32], pd.DataFrame, NDArray[np.bool_]]:
    """Vectors (n, dim), metadata (label, prediction, scanner, site, age) and the group mask.

    ``group_size`` points have ``scanner=B``; their predictions are wrong 40% of the time,
    everyone else's 5%.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(n_classes, dim))
    label = rng.integers(0, n_classes, n)
    x = centres[label] + rng.normal(size=(n, dim))
    group = np.zeros(n, dtype=bool)
    group[rng.choice(n, group_size, replace=False)] = True
    x[group, -2:] += 2.5  # a scanner artefact: the group sits a little apart in every blob
    scanner = rng.choice(np.array(["A", "C", "D"]), n)
    scanner[group] = GROUP_VALUE
    wrong = rng.random(n) < np.where(group, 0.4, 0.05)
    shifted = (label + rng.integers(1, n_classes, n)) % n_classes
    meta = pd.DataFrame(
        {
            "pid": [f"p{i:05d}" for i in range(n)],
            "label": [f"c{v}" for v in label],
            "prediction": [f"c{v}" for v in np.where(wrong, shifted, label)],
            GROUP_COLUMN: scanner,
            "site": rng.choice(np.array(["s1", "s2", "s3"]), n),
            "age": rng.normal(50.0, 12.0, n).round(1),
        }
    )
    return x.astype(np.float32), meta, group


def planted_topics(
    per_topic: int = 80, *, dim: int = 24, seed: int = 0
) -> tuple[NDArray[np.float32], pd.DataFrame]:
    """Vectors grouped by topic and texts ``abstract`` (column ``topic`` is the answer).

    Each text mixes corpus words (in every topic) with the topic word and its neighbours;
    nine in ten name the topic word, one in five another topic's word.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(len(TOPICS), dim))
    rows, vectors = [], []
    for t, topic in enumerate(TOPICS):
        for _ in range(per_topic):
            words = list(rng.choice(_CORPUS, 5)) + list(rng.choice(_TOPIC_WORDS[topic], 2))
            if rng.random() < 0.9:
                words.append(topic)
            if rng.random() < 0.2:
                words.append(str(rng.choice([w for w in TOPICS if w != topic])))
            rng.shuffle(words)
            rows.append({"topic": topic, "abstract": " ".join(words)})
            vectors.append(centres[t] + rng.normal(size=dim))
    return np.asarray(vectors, dtype=np.float32), pd.DataFrame(rows)
