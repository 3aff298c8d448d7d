"""Sequence-aware item-kNN: what people went on to next from the user's most recent items.

Two item-to-item matrices, both learnt from the training interactions only:

* transitions: for every user's sequence (oldest first), each item a "votes" for the
  `window` items that follow it, the k-th one with weight step_decay^(k-1); each row is
  divided by its sum, so T[a, b] is the share of what followed a that was b;
* co-occurrence: the item-kNN cosine (retrieval.collaborative.ItemSimilarity), each row
  likewise divided by its sum.

A user's score for item j is Σ decay^age · (T[h, j] + knn_weight · S[h, j]) over the
history's last `max_history` items h, age 0 being the most recent. On MovieLens what a
user rates next follows what they rated last (the rating pages list related films), so
every interaction counts whatever its rating. Defaults: chosen on validation cases of
ML-100K and ML-1M (eval/configs/retrieval_*.toml say how).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from retrieval.collaborative import (
    Interactions,
    ItemSimilarity,
    _check,
    as_rows,
    pairs_of,
    ranked_candidates,
    recent_first,
    sequences,
)
from retrieval.errors import ConfigError
from retrieval.store import CatalogStore
from retrieval.types import Candidate, UserHistory


def transition_matrix(
    seqs: Mapping[str, Sequence[str]], index: Mapping[str, int], *, window: int,
    step_decay: float,
) -> sp.csr_matrix:
    """Raw transition weights: T[a, b] = Σ over sequences and k = 1..window of
    step_decay^(k-1) for each time b comes k places after a (a → a never counts)."""
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for seq in seqs.values():
        ids = np.asarray([index[i] for i in seq if i in index], dtype=np.int64)
        for k in range(1, min(window, len(ids) - 1) + 1):
            src.append(ids[:-k])
            dst.append(ids[k:])
            val.append(np.full(len(ids) - k, step_decay ** (k - 1)))
    n = len(index)
    if not src:
        return sp.csr_matrix((n, n), dtype=np.float64)
    matrix = sp.coo_matrix((np.concatenate(val), (np.concatenate(src), np.concatenate(dst))),
                           shape=(n, n)).tocsr()  # duplicates are summed
    matrix.setdiag(0.0)
    matrix.eliminate_zeros()
    return matrix


def row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum (an all-zero row stays zero)."""
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


class SequentialRetriever:
    """Items that follow, or go with, the user's most recent items; seen ones excluded.

    Each Candidate's `nearest_history_id` is the history item that contributed most to its
    score (decay included): "because you watched X lately". `where` is applied as a Chroma
    metadata filter when the items are read from the catalog.
    """

    source = "sequential"

    def __init__(
        self, store: CatalogStore, interactions: Interactions, *, window: int = 10,
        step_decay: float = 0.8, decay: float = 0.8, knn_weight: float = 1.0,
        max_history: int = 50, normalise: bool = True, source: str = "sequential",
        similarity: ItemSimilarity | None = None,
    ) -> None:
        """`normalise=False` with knn_weight 0, no decay: the plain count of what came
        within `window` ratings after each of the last `max_history` items (the "nextcount"
        source, under that `source` name). `similarity`: the item-kNN cosine of these
        interactions, when already built (shared)."""
        if window < 1 or max_history < 1:
            raise ConfigError(f"window and max_history must be at least 1, got {window} and "
                              f"{max_history}")
        if not (0 < decay <= 1 and 0 < step_decay <= 1):
            raise ConfigError(f"decay and step_decay must be in (0, 1], got {decay} and "
                              f"{step_decay}")
        if knn_weight < 0:
            raise ConfigError(f"knn_weight must be >= 0, got {knn_weight}")
        rows = as_rows(interactions)
        self.store = store
        self.similarity = similarity or ItemSimilarity(pairs_of(rows))
        """Item ids and columns (`index`, `ids`), and the item-kNN cosine."""
        self.transitions = transition_matrix(sequences(rows), self.similarity.index,
                                             window=window, step_decay=step_decay)
        """Raw transition weights (before row normalisation)."""
        self.source = source
        matrix = row_normalised(self.transitions) if normalise else self.transitions
        if knn_weight > 0:
            matrix = matrix + knn_weight * row_normalised(self.similarity.matrix)
        self.matrix = sp.csr_matrix(matrix)
        self.decay = decay
        self.max_history = max_history

    def scores(self, recent: Sequence[str]) -> tuple[np.ndarray, list[str], list[float]]:
        """Score of every item for a history given most recent first; also the known
        history items used and their weights."""
        index = self.similarity.index
        known = [i for i in recent if i in index][: self.max_history]
        weights = [self.decay ** age for age in range(len(known))]
        if not known:
            return np.zeros(len(index), dtype=np.float64), known, weights
        rows = [index[i] for i in known]
        scores = self.matrix[rows].T @ np.asarray(weights, dtype=np.float64)
        return np.asarray(scores, dtype=np.float64).ravel(), known, weights

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        index, ids = self.similarity.index, self.similarity.ids
        scores, known, weights = self.scores(recent_first(history, len(history.interactions)))
        for seen in history.seen_ids:
            if seen in index:
                scores[index[seen]] = 0.0
        def nearest(found: list[str]) -> list[str | None]:  # the largest contribution
            block = self.matrix[[index[i] for i in known]][:, [index[i] for i in found]]
            contribution = block.toarray() * np.asarray(weights, dtype=np.float64)[:, None]
            return [known[int(b)] for b in np.argmax(contribution, axis=0)]

        return ranked_candidates(self.store, scores, ids, n, self.source, where, positive=True,
                                 nearest=nearest)
