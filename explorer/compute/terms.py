"""Words that set a group of documents apart from its siblings (class-based TF-IDF).

As in BERTopic's c-TF-IDF the documents of a group are one class, but a term is scored
against the *other* classes at the same level, not the whole corpus: with ``p_c`` the
share of class ``c``'s documents holding the term and ``p_r`` the share of the rest's
(both smoothed by half a document), ``score = p_c · log(p_c / p_r)``. A word as common in
the siblings as here scores 0 whatever its frequency, so corpus-wide words ("data",
"model") never name a group. English stop words are dropped (scikit-learn's
``ENGLISH_STOP_WORDS``), and so are terms in more than ``MAX_DF`` of all documents.
Bigrams compete with words and are kept where they score at least as high as each of
their words ("diffusion models" over "diffusion"). Within one set of siblings a word names
at most one of them: it goes to the sibling where it scores highest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

# Terms in more than this share of the documents are too common to name anything.
MAX_DF = 0.7
# Below this many documents the caps would empty the vocabulary: keep every word.
_MIN_DOCS_FOR_CAPS = 20
_CANDIDATES = 30
_MIN_DOCS = 3
_MIN_Z = 3.0


def document_terms(texts: Sequence[str]) -> tuple[sp.csr_matrix, NDArray[np.str_]] | None:
    """(n, V) binary document-term matrix (words and bigrams) and the V terms; None when
    the texts hold no words."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = ["" if t is None else str(t) for t in texts]
    capped = len(docs) >= _MIN_DOCS_FOR_CAPS
    for max_df, min_df in ((MAX_DF, 2), (1.0, 1)) if capped else ((1.0, 1),):
        vectorizer = CountVectorizer(
            stop_words="english",
            ngram_range=(1, 2),
            binary=True,
            max_df=max_df,
            min_df=min_df,
            max_features=50_000,
        )
        try:
            counts = vectorizer.fit_transform(docs)
        except ValueError:  # "empty vocabulary" (or every term pruned by the caps)
            continue
        return sp.csr_matrix(counts, dtype=np.float64), vectorizer.get_feature_names_out()
    return None


def _scores(
    df: sp.csr_matrix, sizes: NDArray[np.float64], total_df: NDArray[np.float64], n_total: float
) -> sp.csr_matrix:
    """Per class and term, ``p_c · log(p_c / p_rest)`` (only terms the class holds)."""
    df = sp.csr_matrix(df)
    row = np.repeat(np.arange(df.shape[0]), np.diff(df.indptr))
    here = df.data
    rest = np.maximum(total_df[df.indices] - here, 0.0)
    p_c = (here + 0.5) / (sizes[row] + 1.0)
    p_r = (rest + 0.5) / (np.maximum(n_total - sizes[row], 0.0) + 1.0)
    score = p_c * np.log(p_c / p_r)
    # A theme, not an accident: a few documents, and a share well above the rest's (a
    # node split at random from its siblings has no word that passes).
    z = (p_c - p_r) / np.sqrt(p_r * (1.0 - p_r) / np.maximum(sizes[row], 1.0))
    score = np.where((here >= _MIN_DOCS) & (z >= _MIN_Z), score, 0.0)
    return sp.csr_matrix((np.maximum(score, 0.0), df.indices, df.indptr), shape=df.shape)


def _candidates(scores: sp.csr_matrix, vocab: NDArray[np.str_], c: int) -> list[tuple[float, str]]:
    lo, hi = scores.indptr[c], scores.indptr[c + 1]
    vals, cols = scores.data[lo:hi], scores.indices[lo:hi]
    by_term = {str(vocab[j]): float(v) for j, v in zip(cols, vals, strict=True) if v > 0}
    out = []
    for term, value in by_term.items():
        words = term.split()
        # a bigram is kept only where it beats each of its words ("data data" never)
        if len(words) > 1 and (
            len(set(words)) < len(words) or value < max(by_term.get(w, 0.0) for w in words)
        ):
            continue
        out.append((value, term))
    out.sort(key=lambda x: (-x[0], -len(x[1].split()), x[1]))  # ties: the bigram
    return out[:_CANDIDATES]


def distinctive_terms(
    class_df: sp.spmatrix | NDArray[np.float64],
    class_sizes: ArrayLike,
    total_df: ArrayLike,
    n_total: float,
    vocab: NDArray[np.str_],
    n_terms: int = 3,
) -> list[list[str]]:
    """Up to ``n_terms`` terms per class that set it apart from the rest.

    class_df : (K, V) documents of each class holding each term; class_sizes : (K,)
    documents per class; total_df : (V,) documents holding each term over the classes and
    their rest (the siblings' parent, or the whole corpus), ``n_total`` documents in all.
    No word appears in two classes' terms.
    """
    df = sp.csr_matrix(class_df, dtype=np.float64)
    sizes = np.asarray(class_sizes, dtype=np.float64)
    scores = _scores(df, sizes, np.asarray(total_df, dtype=np.float64).ravel(), float(n_total))
    pool = [(v, c, t) for c in range(df.shape[0]) for v, t in _candidates(scores, vocab, c)]
    pool.sort(key=lambda x: (-x[0], -len(x[2].split()), x[1], x[2]))
    owner: dict[str, int] = {}
    chosen: list[list[str]] = [[] for _ in range(df.shape[0])]
    for _, c, term in pool:
        words = term.split()
        # a word already named (by a sibling, or by this class's own bigram) is spent
        if len(chosen[c]) >= n_terms or any(w in owner for w in words):
            continue
        chosen[c].append(term)
        owner.update(dict.fromkeys(words, c))
    return chosen
