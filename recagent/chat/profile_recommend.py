"""Recommend for a preference profile: retrieve with its filters, rank, then gate.

Retrieval embeds nothing for liked items (their stored vectors are reused) and only
the profile's free-text wishes; genre and year limits go to Chroma as a `where`
filter and everything the user named is excluded. The Recommender then ranks and
explains those candidates, and its final gate (recagent.gate) drops anything that
breaks a hard constraint of the profile, whatever retrieval or the model did.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from itertools import zip_longest

import numpy as np

from recagent.chat.profile import violations, where_filter
from recagent.gate import Limits, no_limits
from recagent.recommender import Recommender
from recagent.types import (
    Candidate,
    Interaction,
    Item,
    PreferenceProfile,
    RankedItem,
    Trace,
    UserHistory,
)
from retrieval.embeddings import l2_normalise
from retrieval.query import nearest, stack, taste_vector

NEUTRAL_QUERY = "A widely loved, well reviewed film."
"""The retrieval query when a profile says nothing positive yet (only limits)."""
SOURCE = "profile"
MAX_WITHIN = 5000
"""The most given ids `candidates_within` scores (their vectors are read from Chroma)."""


@dataclass(frozen=True)
class ProfileResult:
    items: list[RankedItem]
    trace: Trace | None
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.trace is not None and self.trace.degraded


def _in_turns(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Both id lists taken in turns, `first` leading, without repeats."""
    return list(dict.fromkeys(i for pair in zip_longest(first, second) for i in pair if i))


def _fused(own: Sequence[Candidate], theirs: Sequence[Candidate], n: int) -> list[Candidate]:
    """Both lists taken in turns, the product's first, without repeats: each keeps half of
    the top places whatever the other ranks (reciprocal-rank fusion would favour what both
    propose, and the profile's nearest items are the product's text source's too). A
    candidate keeps its profile form (nearest liked item) when the profile query found it."""
    by_id = {c.item.id: c for c in theirs} | {c.item.id: c for c in own}
    top = _in_turns([c.item.id for c in theirs], [c.item.id for c in own])[:n]
    return [by_id[i].model_copy(update={"rank": rank, "score": 1.0 / (rank + 1),
                                        "scores_by_source": {SOURCE: 1.0 / (rank + 1)}})
            for rank, i in enumerate(top)]


class ProfileRecommender:
    """A Recommender driven by a PreferenceProfile instead of an interaction history."""

    def __init__(self, recommender: Recommender, *, dislike_weight: float = 0.5,
                 wish_weight: float = 0.5) -> None:
        self.recommender = recommender
        self.store = recommender.store
        self.dislike_weight = dislike_weight
        self.wish_weight = wish_weight

    def candidates(self, profile: PreferenceProfile, n: int) -> list[Candidate]:
        """Up to n unnamed items within the profile's limits, best first: the profile's
        nearest items (liked, disliked and wishes in one query) taken in turns with what
        the product's own retrieval proposes for the liked items as a history (its
        collaborative sources know what people who liked them also liked)."""
        liked = [r.item_id for r in profile.liked]
        vectors = self.store.vectors(liked + [r.item_id for r in profile.disliked])
        hits = self.store.query(self.query_vector(profile, vectors), n,
                                exclude=profile.excluded_ids, where=where_filter(profile))
        liked_ids = [i for i in liked if i in vectors]
        liked_matrix = stack([vectors[i] for i in liked_ids])
        own = [Candidate(item=item, rank=rank, score=score, scores_by_source={SOURCE: score},
                         nearest_history_id=nearest(liked_ids, liked_matrix, vector))
               for rank, (item, score, vector) in enumerate(hits)]
        retriever = self.recommender.retriever
        if not liked_ids or retriever is None:
            return own
        history = UserHistory.from_ids(liked_ids)
        named = profile.excluded_ids
        theirs = [c for c in retriever.retrieve(history, n, where=where_filter(profile))
                  if c.item.id not in named]
        return _fused(own, theirs, n)

    def similar(self, seeds: Sequence[str], within: Sequence[str], n: int, *,
                exclude: Set[str] = frozenset()) -> list[str]:
        """Up to n of `within` ranked as like the seeds, the two lists `candidates` takes
        in turns: the product's fused retrieval with the seeds as a history (what people
        who liked them also liked) and closeness to the seeds' mean text vector (sequels,
        namesakes, the same kind of story); each alone did worse on ReDial turns."""
        skip = set(exclude) | set(seeds)
        pool = [i for i in dict.fromkeys(within) if i not in skip][:MAX_WITHIN]
        vectors = self.store.vectors(list(seeds))
        if not vectors or not pool:
            return []
        query = l2_normalise(np.mean(np.stack(list(vectors.values())), axis=0))
        found = self.store.vectors(pool)
        text = sorted(found, key=lambda i: (-float(found[i] @ query), i))
        theirs: list[str] = []
        if self.recommender.retriever is not None:
            allowed = set(found)
            history = UserHistory.from_ids([i for i in seeds if i in vectors])
            theirs = [c.item.id for c in self.recommender.retriever.retrieve(
                history, MAX_WITHIN) if c.item.id in allowed]
        return _in_turns(theirs, text)[:n]

    def candidates_within(self, profile: PreferenceProfile, ids: Sequence[str], n: int, *,
                          keep_order: bool = False) -> list[Candidate]:
        """Up to n of `ids` that the profile does not name: nearest the profile first, or
        in the given order (`keep_order`: they were ranked already, e.g. by similarity)."""
        named = profile.excluded_ids
        pool_ids = [i for i in dict.fromkeys(ids) if i not in named][:MAX_WITHIN]
        liked = [r.item_id for r in profile.liked]
        vectors = self.store.vectors(liked + [r.item_id for r in profile.disliked])
        query = self.query_vector(profile, vectors)
        pool = self.store.vectors(pool_ids)
        scored = [(i, float(pool[i] @ query)) for i in pool_ids if i in pool]
        if not keep_order:
            scored.sort(key=lambda s: (-s[1], s[0]))
        scored = scored[:n]
        items = self.store.get([i for i, _ in scored])
        liked_ids = [i for i in liked if i in vectors]
        liked_matrix = stack([vectors[i] for i in liked_ids])
        return [Candidate(item=items[i], rank=rank, score=score,
                          scores_by_source={SOURCE: score},
                          nearest_history_id=nearest(liked_ids, liked_matrix, pool[i]))
                for rank, (i, score) in enumerate(scored) if i in items]

    def recommend(self, profile: PreferenceProfile, k: int, *,
                  limits: Limits = no_limits) -> ProfileResult:
        """Ranked, explained, and gated by every hard constraint of the profile (and by
        `limits`, e.g. an agent's attribute filter): an item that breaks one is dropped (a
        note says which and why) and the list topped up."""
        candidates = self.candidates(profile, max(k, self.recommender.n_candidates))
        return self.rank(profile, k, candidates, limits=limits)

    def rank(self, profile: PreferenceProfile, k: int, candidates: list[Candidate], *,
             limits: Limits = no_limits) -> ProfileResult:
        """`recommend` over candidates chosen elsewhere (the agent's buffer)."""
        if not candidates:
            return ProfileResult([], None, [], ["no catalog item fits all the limits"])
        interactions = [Interaction(item_id=r.item_id, liked=True, ts=n)
                        for n, r in enumerate(profile.liked)]
        interactions += [Interaction(item_id=r.item_id, liked=False, ts=len(interactions) + n)
                         for n, r in enumerate(profile.disliked)]
        def problems(item: Item) -> list[str]:
            return violations(item, profile) + limits(item)

        rec = self.recommender.recommend(UserHistory(interactions=interactions),
                                         k=min(k, len(candidates)), candidates=candidates,
                                         limits=problems)
        notes = [r.detail for r in rec.trace.repairs if r.kind == "violates"]
        return ProfileResult(rec.items, rec.trace, candidates, notes)

    def query_vector(self, profile: PreferenceProfile,
                     vectors: dict[str, np.ndarray]) -> np.ndarray:
        """The liked and disliked means at unit length, plus the wishes (and asked-for
        genres) embedded at `wish_weight`; a neutral query when nothing is positive."""
        text = " ".join([*profile.wishes, *(f"{g} film" for g in profile.include_genres)])
        extra = [self.wish_weight * self._embed(text.strip())] if text.strip() else []
        return taste_vector(
            [vectors[r.item_id] for r in profile.liked if r.item_id in vectors],
            [vectors[r.item_id] for r in profile.disliked if r.item_id in vectors],
            dislike_weight=self.dislike_weight, extra=extra, unit_means=True,
            fallback=lambda: self._embed(NEUTRAL_QUERY))

    def _embed(self, text: str) -> np.ndarray:
        vector = self.store.embedder.embed([text])[0]
        return l2_normalise(np.asarray(vector, dtype=np.float32))
