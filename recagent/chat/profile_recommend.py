"""Recommend for a preference profile: retrieve with its filters, rank, then check.

Retrieval embeds nothing for liked items (their stored vectors are reused) and only
the profile's free-text wishes; genre and year limits go to Chroma as a `where`
filter and everything the user named is excluded. The Recommender then ranks and
explains those candidates, and a final check drops anything that breaks a hard
constraint, whatever retrieval or the model did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recagent.chat.profile import violations, where_filter
from recagent.gate import retrieval_reason
from recagent.recommender import Recommender
from recagent.types import (
    Candidate,
    Interaction,
    PreferenceProfile,
    RankedItem,
    Trace,
    UserHistory,
)
from retrieval.embeddings import l2_normalise

NEUTRAL_QUERY = "A widely loved, well reviewed film."
"""The retrieval query when a profile says nothing positive yet (only limits)."""
SOURCE = "profile"


@dataclass(frozen=True)
class ProfileResult:
    items: list[RankedItem]
    trace: Trace | None
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.trace is not None and self.trace.degraded


class ProfileRecommender:
    """A Recommender driven by a PreferenceProfile instead of an interaction history."""

    def __init__(self, recommender: Recommender, *, dislike_weight: float = 0.5,
                 wish_weight: float = 0.5) -> None:
        self.recommender = recommender
        self.store = recommender.store
        self.dislike_weight = dislike_weight
        self.wish_weight = wish_weight

    def candidates(self, profile: PreferenceProfile, n: int) -> list[Candidate]:
        """Up to n unnamed items within the profile's limits, nearest first."""
        liked = [r.item_id for r in profile.liked]
        vectors = self.store.vectors(liked + [r.item_id for r in profile.disliked])
        hits = self.store.query(self._query(profile, vectors), n,
                                exclude=profile.excluded_ids, where=where_filter(profile))
        liked_ids = [i for i in liked if i in vectors]
        liked_matrix = np.stack([vectors[i] for i in liked_ids]) if liked_ids else None
        out = []
        for rank, (item, score, vector) in enumerate(hits):
            nearest = (liked_ids[int(np.argmax(liked_matrix @ vector))]
                       if liked_matrix is not None else None)
            out.append(Candidate(item=item, rank=rank, score=score,
                                 scores_by_source={SOURCE: score}, nearest_history_id=nearest))
        return out

    def recommend(self, profile: PreferenceProfile, k: int) -> ProfileResult:
        """Ranked, explained, and checked against every hard constraint of the profile."""
        candidates = self.candidates(profile, max(k, self.recommender.n_candidates))
        if not candidates:
            return ProfileResult([], None, [], ["no catalog item fits all the limits"])
        interactions = [Interaction(item_id=r.item_id, liked=True, ts=n)
                        for n, r in enumerate(profile.liked)]
        interactions += [Interaction(item_id=r.item_id, liked=False, ts=len(interactions) + n)
                         for n, r in enumerate(profile.disliked)]
        rec = self.recommender.recommend(UserHistory(interactions=interactions),
                                         k=min(k, len(candidates)), candidates=candidates)
        items, notes = check(rec.items, candidates, profile, k,
                             {r.item_id: r.title for r in profile.liked})
        return ProfileResult(items, rec.trace, candidates, notes)

    def _query(self, profile: PreferenceProfile, vectors: dict[str, np.ndarray]) -> np.ndarray:
        liked = [vectors[r.item_id] for r in profile.liked if r.item_id in vectors]
        disliked = [vectors[r.item_id] for r in profile.disliked if r.item_id in vectors]
        parts: list[np.ndarray] = []
        if liked:
            parts.append(l2_normalise(np.mean(liked, axis=0)))
        text = " ".join([*profile.wishes, *(f"{g} film" for g in profile.include_genres)])
        if text.strip():
            wish = np.asarray(self.store.embedder.embed([text.strip()])[0], dtype=np.float32)
            parts.append(self.wish_weight * l2_normalise(wish))
        if not parts:
            neutral = self.store.embedder.embed([NEUTRAL_QUERY])[0]
            parts.append(l2_normalise(np.asarray(neutral, dtype=np.float32)))
        query = np.sum(parts, axis=0)
        if disliked:
            query = query - self.dislike_weight * l2_normalise(np.mean(disliked, axis=0))
        if np.linalg.norm(query) < 1e-6:
            query = parts[0]
        return l2_normalise(np.asarray(query, dtype=np.float32))


def check(
    items: Sequence[RankedItem],
    candidates: Sequence[Candidate],
    profile: PreferenceProfile,
    k: int,
    liked_titles: dict[str, str],
) -> tuple[list[RankedItem], list[str]]:
    """The final gate: only candidates, no repeats, every hard constraint; top up to k."""
    by_id = {c.item.id: c for c in candidates}
    kept: list[RankedItem] = []
    notes: list[str] = []
    for item in items:
        candidate = by_id.get(item.item_id)
        problems = (["is not a candidate"] if candidate is None
                    else violations(candidate.item, profile))
        if any(k_.item_id == item.item_id for k_ in kept):
            problems.append("is a repeat")
        if problems:
            notes.append(f"dropped {item.title!r}: {'; '.join(problems)}")
        else:
            kept.append(item)
    for candidate in candidates:
        if len(kept) >= k:
            break
        if any(i.item_id == candidate.item.id for i in kept):
            continue
        if not violations(candidate.item, profile):
            kept.append(RankedItem(
                item_id=candidate.item.id, title=candidate.item.title,
                score=round(1.0 / (len(kept) + 1), 6),
                explanation=retrieval_reason(candidate, liked_titles), source="retrieval"))
    return kept[:k], notes
