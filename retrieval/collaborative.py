"""Collaborative candidate sources: item co-occurrence (item-kNN) and popularity.

Both learn only from the (user, item) pairs given to the constructor, so an evaluation
can fit them on its training interactions and nothing else. They can only propose items
that someone interacted with; an item without interactions is reachable through the
semantic retriever (see retrieval.hybrid).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from retrieval.errors import ConfigError
from retrieval.store import CatalogStore
from retrieval.types import Candidate, UserHistory

Pairs = Iterable[tuple[str, str]]
"""Training interactions as (user id, item id); repeats of a pair count once for item-kNN."""


class ItemSimilarity:
    """Cosine of co-occurrence: users who had both items / √(users of one · users of other).

    One implementation for the item-kNN retriever and the item-kNN evaluation baseline.
    """

    def __init__(self, pairs: Pairs) -> None:
        unique = list(dict.fromkeys(pairs))
        users = {u: n for n, u in enumerate(dict.fromkeys(u for u, _ in unique))}
        self.index = {i: n for n, i in enumerate(dict.fromkeys(i for _, i in unique))}
        """Item id → column, in order of first appearance (the tie-break order)."""
        self.ids = list(self.index)
        rows = [users[u] for u, _ in unique]
        cols = [self.index[i] for _, i in unique]
        matrix = sp.csr_matrix((np.ones(len(unique), dtype=np.float32), (rows, cols)),
                               shape=(len(users), len(self.index)))
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        scale = sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))
        self.matrix = (scale @ (matrix.T @ matrix) @ scale).tocsr()
        self.matrix.setdiag(0.0)
        self.matrix.eliminate_zeros()

    def scores(self, history: Sequence[str]) -> np.ndarray:
        """Similarity to every item, summed over the history items it knows."""
        rows = [self.index[i] for i in history if i in self.index]
        if not rows:
            return np.zeros(len(self.ids), dtype=np.float64)
        return np.asarray(self.matrix[rows].sum(axis=0), dtype=np.float64).ravel()


def _check(history: UserHistory, n: int) -> None:
    if not history.interactions:
        raise ConfigError("history is empty: give at least one item the user interacted with")
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")


def _candidates(
    store: CatalogStore, ranked: Sequence[tuple[str, float]], n: int, source: str,
    where: dict[str, Any] | None,
) -> list[Candidate]:
    """The first n ranked ids that the catalog holds (and `where` admits), as Candidates.

    Training data may name items the catalog lacks: those are skipped, never returned.
    """
    out: list[Candidate] = []
    step = max(2 * n, 64)
    for start in range(0, len(ranked), step):
        chunk = ranked[start:start + step]
        items = store.get([i for i, _ in chunk], where=where)
        for item_id, score in chunk:
            if item_id in items and len(out) < n:
                out.append(Candidate(item=items[item_id], rank=len(out), score=score,
                                     scores_by_source={source: score}))
        if len(out) >= n:
            break
    return out


class CoOccurrenceRetriever:
    """Items that co-occur with the history's liked items (item-kNN), seen ones excluded.

    Only positive interactions (likes, ratings >= 4, bare views) vote; a history without
    one the training data knows gets no candidates from this source. `where` is applied
    as a Chroma metadata filter when the items are read from the catalog.
    """

    source = "cooccurrence"

    def __init__(self, store: CatalogStore, interactions: Pairs) -> None:
        self.store = store
        self.similarity = ItemSimilarity(interactions)

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        sim = self.similarity
        liked = [i.item_id for i in history.interactions
                 if i.polarity > 0 and i.item_id in sim.index]
        scores = sim.scores(liked)
        for seen in history.seen_ids:
            if seen in sim.index:
                scores[sim.index[seen]] = 0.0
        order = [int(j) for j in np.argsort(-scores, kind="stable") if scores[j] > 0]
        ranked = [(sim.ids[j], float(scores[j])) for j in order]
        found = _candidates(self.store, ranked, n, self.source, where)
        return _with_nearest(found, liked, sim)


def _with_nearest(
    found: list[Candidate], liked: list[str], sim: ItemSimilarity
) -> list[Candidate]:
    """Each candidate's most similar liked item: what the recommendation can cite."""
    if not found or not liked:
        return found
    rows = [sim.index[i] for i in liked]
    cols = [sim.index[c.item.id] for c in found]
    block = sim.matrix[rows][:, cols].toarray()
    best = np.argmax(block, axis=0)
    return [c.model_copy(update={"nearest_history_id": liked[int(b)]})
            for c, b in zip(found, best, strict=True)]


class PopularityRetriever:
    """The most interacted-with items, seen ones excluded: the same list for everyone.

    Score = number of training interactions; ties keep first-appearance order. `where`
    is applied as a Chroma metadata filter when the items are read from the catalog.
    """

    source = "popularity"

    def __init__(self, store: CatalogStore, interactions: Pairs) -> None:
        self.store = store
        counts = Counter(i for _, i in interactions)
        self.ranked = [(i, float(c)) for i, c in counts.most_common()]

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        seen = history.seen_ids
        ranked = [(i, s) for i, s in self.ranked if i not in seen]
        return _candidates(self.store, ranked, n, self.source, where)
