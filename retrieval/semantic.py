"""Candidate retrieval: from a user's history to a short list of unseen catalog items.

The semantic retriever embeds nothing at query time: it reuses the stored vectors of
the history items, so a query costs one Chroma search.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval.embeddings import l2_normalise
from retrieval.errors import ConfigError, EmptyCatalogError, UnknownItemError
from retrieval.store import CatalogStore
from retrieval.types import Candidate, UserHistory


class SemanticRetriever:
    """Nearest neighbours of (mean liked vector - w * mean disliked vector).

    Neutral interactions only mark items as seen. A history with neither likes nor
    dislikes falls back to the mean of what was seen: the only signal there is.
    """

    source = "semantic"

    def __init__(self, store: CatalogStore, *, dislike_weight: float = 0.5) -> None:
        if dislike_weight < 0:
            raise ConfigError(f"dislike_weight must be >= 0, got {dislike_weight}")
        self.store = store
        self.dislike_weight = dislike_weight

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        if not history.interactions:
            raise ConfigError("history is empty: give at least one item the user interacted with")
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        if self.store.count() == 0:
            raise EmptyCatalogError(
                "the catalog is empty; run `recagent ingest` to load items first"
            )
        ids = [i.item_id for i in history.interactions]
        vectors = self.store.vectors(ids)
        missing = [i for i in ids if i not in vectors]
        if missing:
            raise UnknownItemError(missing)

        liked = [i.item_id for i in history.interactions if i.polarity > 0]
        disliked = [i.item_id for i in history.interactions if i.polarity < 0]
        query = self._query_vector(
            [vectors[i] for i in liked], [vectors[i] for i in disliked], list(vectors.values())
        )
        hits = self.store.query(query, n, exclude=history.seen_ids, where=where)

        liked_matrix = np.stack([vectors[i] for i in liked]) if liked else None
        candidates = []
        for rank, (item, score, vector) in enumerate(hits):
            nearest = None
            if liked_matrix is not None:
                nearest = liked[int(np.argmax(liked_matrix @ vector))]
            candidates.append(
                Candidate(
                    item=item,
                    rank=rank,
                    score=score,
                    scores_by_source={self.source: score},
                    nearest_history_id=nearest,
                )
            )
        return candidates

    def _query_vector(
        self, liked: list[np.ndarray], disliked: list[np.ndarray], seen: list[np.ndarray]
    ) -> np.ndarray:
        if liked:
            query = np.mean(liked, axis=0)
            if disliked:
                query = query - self.dislike_weight * np.mean(disliked, axis=0)
            if np.linalg.norm(query) < 1e-6:  # dislikes cancelled the likes exactly
                query = np.mean(liked, axis=0)
        elif disliked:
            query = -np.mean(disliked, axis=0)
        else:
            query = np.mean(seen, axis=0)
        return l2_normalise(np.asarray(query, dtype=np.float32))
