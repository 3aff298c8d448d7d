"""Candidate retrieval: from a user's history to a short list of unseen catalog items.

The semantic retriever embeds nothing at query time: it reuses the stored vectors of
the history items, so a query costs one Chroma search.
"""

from __future__ import annotations

from typing import Any

from retrieval.errors import ConfigError, EmptyCatalogError, UnknownItemError
from retrieval.query import nearest, stack, taste_vector
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
        positive = [vectors[i] for i in liked]
        if not liked and not disliked:  # only neutral: what was seen is the only signal
            positive = list(vectors.values())
        query = taste_vector(positive, [vectors[i] for i in disliked],
                             dislike_weight=self.dislike_weight)
        hits = self.store.query(query, n, exclude=history.seen_ids, where=where)

        liked_matrix = stack([vectors[i] for i in liked])
        return [
            Candidate(
                item=item,
                rank=rank,
                score=score,
                scores_by_source={self.source: score},
                nearest_history_id=nearest(liked, liked_matrix, vector),
            )
            for rank, (item, score, vector) in enumerate(hits)
        ]
