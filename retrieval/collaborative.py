"""Collaborative candidate sources: item co-occurrence (item-kNN), its recency-weighted
variant, and popularity; plus the shapes every collaborative source is trained from.

Each learns only from the interactions given to its constructor, so an evaluation can fit
it on its training interactions and nothing else. Interactions are (user, item) pairs or
(user, item, rating, timestamp) rows (`Row`); `as_rows` reads either. They can only
propose items that someone interacted with; an item without interactions is reachable
through the semantic retriever (see retrieval.hybrid).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from retrieval.errors import ConfigError
from retrieval.store import CatalogStore
from retrieval.types import Candidate, Item, UserHistory

Pairs = Iterable[tuple[str, str]]
"""Training interactions as (user id, item id); repeats of a pair count once for item-kNN."""
Row = tuple[str, str, float | None, int | None]
"""One training interaction: (user id, item id, rating or None, timestamp or None)."""
Interactions = Iterable[tuple[str, str] | Row]
"""Pairs or rows. A user's interactions are in time order: by timestamp where every one of
them has one, equal timestamps (and missing ones) keep the given order."""


def as_rows(interactions: Interactions) -> list[Row]:
    """Pairs become rows without rating or timestamp; rows are kept as they are."""
    rows: list[Row] = []
    for entry in interactions:
        if len(entry) == 2:
            rows.append((entry[0], entry[1], None, None))
        elif len(entry) == 4:
            rows.append(entry)
        else:
            raise ConfigError(f"an interaction is (user, item) or (user, item, rating, "
                              f"timestamp), got {entry!r}")
    return rows


def pairs_of(rows: Iterable[Row]) -> list[tuple[str, str]]:
    return [(user, item) for user, item, _, _ in rows]


def sequences(rows: Iterable[Row]) -> dict[str, list[str]]:
    """Each user's items oldest first (see `Interactions` for the order)."""
    by_user: dict[str, list[Row]] = {}
    for row in rows:
        by_user.setdefault(row[0], []).append(row)
    ordered: dict[str, list[str]] = {}
    for user, own in by_user.items():
        if all(r[3] is not None for r in own):
            own = sorted(own, key=lambda r: r[3] or 0)  # stable: ties keep the given order
        ordered[user] = [r[1] for r in own]
    return ordered


def recent_first(history: UserHistory, limit: int) -> list[str]:
    """The history's items, most recent first (age 0 first), at most `limit` of them."""
    return [i.item_id for i in reversed(history.chronological())][:limit]


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

    def scores(
        self, history: Sequence[str], weights: Sequence[float] | None = None
    ) -> np.ndarray:
        """Similarity to every item, summed over the history items it knows (each times its
        weight, when `weights` are given: one per history item)."""
        known = [n for n, i in enumerate(history) if i in self.index]
        if not known:
            return np.zeros(len(self.ids), dtype=np.float64)
        rows = [self.index[history[n]] for n in known]
        if weights is None:
            return np.asarray(self.matrix[rows].sum(axis=0), dtype=np.float64).ravel()
        w = np.asarray([weights[n] for n in known], dtype=np.float64)
        return np.asarray(self.matrix[rows].T @ w, dtype=np.float64).ravel()


def _check(history: UserHistory, n: int) -> None:
    if not history.interactions:
        raise ConfigError("history is empty: give at least one item the user interacted with")
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")


Nearest = Callable[[list[str]], Sequence[str | None]]
"""For candidate ids, the history item that brought each one (what a recommendation cites)."""


def _candidates(
    store: CatalogStore, ranked: Sequence[tuple[str, float]], n: int, source: str,
    where: dict[str, Any] | None, nearest: Nearest | None = None,
) -> list[Candidate]:
    """The first n ranked ids that the catalog holds (and `where` admits), as Candidates
    (with `nearest`'s history item each: every Candidate is built once).

    Training data may name items the catalog lacks: those are skipped, never returned.
    """
    out: list[tuple[Item, float]] = []
    step = max(2 * n, 64)
    for start in range(0, len(ranked), step):
        chunk = ranked[start:start + step]
        items = store.get([i for i, _ in chunk], where=where)
        for item_id, score in chunk:
            if item_id in items and len(out) < n:
                out.append((items[item_id], score))
        if len(out) >= n:
            break
    near = nearest([item.id for item, _ in out]) if nearest is not None and out \
        else [None] * len(out)
    return [Candidate(item=item, rank=rank, score=score, scores_by_source={source: score},
                      nearest_history_id=h)
            for rank, ((item, score), h) in enumerate(zip(out, near, strict=True))]


def top_rows(scores: np.ndarray, limit: int, *, positive: bool,
             tiebreak: np.ndarray | None = None) -> list[int]:
    """The rows of the `limit` largest finite scores (only those > 0 if `positive`), best
    first: the same prefix a stable sort of all scores gives (ties: lower row first, or
    lower `tiebreak` value), found without sorting them all."""
    keep = scores > 0 if positive else np.isfinite(scores)
    live = int(keep.sum())
    take = min(limit, live)
    if take == 0:
        return []
    masked = np.where(keep, scores, -np.inf)
    cut = masked[np.argpartition(-masked, take - 1)[:take]].min() if take < len(scores) \
        else masked[keep].min()
    near = np.flatnonzero(keep & (masked >= cut))
    if tiebreak is None:
        order = near[np.argsort(-masked[near], kind="stable")]
    else:
        order = near[np.lexsort((tiebreak[near], -masked[near]))]
    return [int(j) for j in order[:take]]


def ranked_candidates(
    store: CatalogStore, scores: np.ndarray, ids: Sequence[str], n: int, source: str,
    where: dict[str, Any] | None, *, positive: bool, tiebreak: np.ndarray | None = None,
    nearest: Nearest | None = None,
) -> list[Candidate]:
    """The n best-scored items the catalog holds (and `where` admits), as Candidates;
    exclude seen items by giving them a score of -inf (or 0 with `positive`). Reads only
    as deep in the scores as the catalog and the filter need."""
    limit = max(2 * n, 64)
    while True:
        rows = top_rows(scores, limit, positive=positive, tiebreak=tiebreak)
        found = _candidates(store, [(ids[j], float(scores[j])) for j in rows], n, source, where,
                            nearest)
        if len(found) >= n or len(rows) < limit:
            return found
        limit *= 4


class CoOccurrenceRetriever:
    """Items that co-occur with the history's liked items (item-kNN), seen ones excluded.

    Only positive interactions (likes, ratings >= 4, bare views) vote; a history without
    one the training data knows gets no candidates from this source. `where` is applied
    as a Chroma metadata filter when the items are read from the catalog.
    """

    source = "cooccurrence"

    def __init__(self, store: CatalogStore, interactions: Interactions, *,
                 similarity: ItemSimilarity | None = None) -> None:
        """`similarity`: the cosine of these interactions, when already built (shared)."""
        self.store = store
        self.similarity = similarity or ItemSimilarity(pairs_of(as_rows(interactions)))

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        sim = self.similarity
        liked = [i.item_id for i in history.interactions
                 if i.polarity > 0 and i.item_id in sim.index]
        return _unseen_top(self.store, sim, sim.scores(liked), history, n, self.source, where,
                           lambda ids: _nearest_ids(ids, liked, sim))


def _unseen_top(
    store: CatalogStore, sim: ItemSimilarity, scores: np.ndarray, history: UserHistory, n: int,
    source: str, where: dict[str, Any] | None, nearest: Nearest,
) -> list[Candidate]:
    """The n best-scored items the user has not seen (a score of 0 proposes nothing)."""
    for seen in history.seen_ids:
        if seen in sim.index:
            scores[sim.index[seen]] = 0.0
    return ranked_candidates(store, scores, sim.ids, n, source, where, positive=True,
                             nearest=nearest)


def _nearest_ids(
    ids: list[str], liked: list[str], sim: ItemSimilarity,
    weights: Sequence[float] | None = None,
) -> Sequence[str | None]:
    """Each candidate's most similar liked item (the largest weighted similarity, with
    `weights`): the history item that brought it, what the recommendation can cite."""
    if not liked:
        return [None] * len(ids)
    rows = [sim.index[i] for i in liked]
    cols = [sim.index[i] for i in ids]
    block = sim.matrix[rows][:, cols].toarray()
    if weights is not None:
        block = block * np.asarray(weights, dtype=np.float64)[:, None]
    return [liked[int(b)] for b in np.argmax(block, axis=0)]


class RecencyKNNRetriever:
    """Item-kNN with recent items weighing more: score(j) = Σ decay^age · cos(h, j) over
    the history's last `max_history` items h (age 0 = the most recent), seen ones excluded.

    The same cosine as `CoOccurrenceRetriever` (users who had both / √(users of each)),
    but every interaction votes, whatever its rating: on MovieLens what a user rates next
    follows what they rated last, liked or not (measured: liked-only votes lose a little).
    Without timestamps the history's order is taken as its time order.
    """

    source = "recency_knn"

    def __init__(
        self, store: CatalogStore, interactions: Interactions, *, decay: float = 0.7,
        max_history: int = 50, similarity: ItemSimilarity | None = None,
    ) -> None:
        if not 0 < decay <= 1:
            raise ConfigError(f"decay must be in (0, 1], got {decay}")
        self.store = store
        self.similarity = similarity or ItemSimilarity(pairs_of(as_rows(interactions)))
        self.decay = decay
        self.max_history = max_history

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        sim = self.similarity
        recent = [i for i in recent_first(history, self.max_history) if i in sim.index]
        weights = [self.decay ** age for age in range(len(recent))]
        return _unseen_top(self.store, sim, sim.scores(recent, weights), history, n,
                           self.source, where, lambda ids: _nearest_ids(ids, recent, sim, weights))


class PopularityRetriever:
    """The most interacted-with items, seen ones excluded: the same list for everyone.

    Score = number of training interactions; ties keep first-appearance order. `where`
    is applied as a Chroma metadata filter when the items are read from the catalog.
    """

    source = "popularity"

    def __init__(self, store: CatalogStore, interactions: Interactions) -> None:
        self.store = store
        counts = Counter(i for _, i in pairs_of(as_rows(interactions)))
        self.ranked = [(i, float(c)) for i, c in counts.most_common()]

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        seen = history.seen_ids
        limit = n + len(seen) + 64  # only as deep as the seen items and the filter need
        while True:
            ranked = [(i, s) for i, s in self.ranked[:limit] if i not in seen]
            found = _candidates(self.store, ranked, n, self.source, where)
            if len(found) >= n or limit >= len(self.ranked):
                return found
            limit *= 4
