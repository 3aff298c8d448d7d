"""Splits and candidate sets: leave-one-out by time, LLMRank's 1+N, our own retrieval.

Every function here is pure and seeded by (seed, user), so a user's candidates do not
depend on which other users are evaluated or in what order.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from eval.datasets import Dataset, Rating
from recagent.types import Candidate, Interaction, UserHistory
from retrieval.hybrid import HybridRetriever
from retrieval.types import Retriever

FULL = 0
"""History length setting meaning "the whole history" (still capped by max_history)."""
RECALL_CUTOFFS = (20, 50)
"""Depths at which the report gives each retrieval source's recall."""
FUSION = "fusion"
"""Name of the fused list among a hybrid pipeline's per-source rankings."""


@dataclass(frozen=True)
class Split:
    """One user's test case: the history before the target, and every item they touched."""

    user: str
    history: tuple[Rating, ...]
    target: str
    seen: frozenset[str]


@dataclass(frozen=True)
class LeaveOneOut:
    splits: list[Split]
    train: list[Rating]
    """Everything a model may learn from: all interactions except each user's target and
    what that user did after it."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Users that cannot be evaluated, by reason (no positive item, nothing before it)."""


@dataclass(frozen=True)
class Case:
    """What every ranker of one run sees for one user: the same history and candidates."""

    user: str
    setting: int
    history: tuple[Rating, ...]
    target: str
    candidates: tuple[str, ...]
    retrieval_scores: tuple[float, ...] = ()
    """Score per candidate when retrieval proposed them (pipeline protocol)."""
    retriever: str = "semantic"
    """Which retriever's scores `retrieval_scores` are: 'semantic' (cosine) or 'hybrid'."""

    @property
    def truncated(self) -> bool:
        return self.setting != FULL

    @property
    def key(self) -> str:
        """What a stored answer for this case depends on: the user's history, target and
        candidates. A re-run whose cases came out otherwise (say, after a retrieval change)
        must not reuse the answers given to the old ones."""
        seen = [(r.item, r.rating, r.ts) for r in self.history]
        blob = json.dumps([self.user, self.setting, seen, self.target, self.candidates])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_positive(rating: Rating, threshold: float) -> bool:
    """Rated at least `threshold`, or implicit feedback (no rating at all)."""
    return rating.rating is None or rating.rating >= threshold


def leave_one_out(
    dataset: Dataset, *, threshold: float = 4.0, positive_history: bool = True
) -> LeaveOneOut:
    """Target = each user's last positive interaction; history = what came before it."""
    splits: list[Split] = []
    train: list[Rating] = []
    skipped: dict[str, int] = {}
    for user, ratings in sorted(dataset.by_user().items(), key=lambda kv: _user_key(kv[0])):
        positions = [n for n, r in enumerate(ratings) if is_positive(r, threshold)]
        if not positions:
            skipped["no positive interaction"] = skipped.get("no positive interaction", 0) + 1
            train.extend(ratings)
            continue
        cut = positions[-1]
        before = _latest_per_item(ratings[:cut])
        history = [r for r in before if is_positive(r, threshold)] if positive_history else before
        target = ratings[cut].item
        history = [r for r in history if r.item != target]
        train.extend(r for r in ratings[:cut] if r.item != target)
        if not history:
            skipped["empty history"] = skipped.get("empty history", 0) + 1
            continue
        splits.append(Split(user=user, history=tuple(history), target=target,
                            seen=frozenset(r.item for r in ratings)))
    return LeaveOneOut(splits=splits, train=train, skipped=skipped)


def _latest_per_item(ratings: Sequence[Rating]) -> list[Rating]:
    """A re-rated item appears once, at its latest interaction (UserHistory forbids repeats)."""
    last = {r.item: n for n, r in enumerate(ratings)}
    return [r for n, r in enumerate(ratings) if last[r.item] == n]


def _user_key(user: str) -> tuple[int, int | str]:
    return (0, int(user)) if user.isdigit() else (1, user)


def truncate(history: Sequence[Rating], length: int, max_history: int) -> tuple[Rating, ...]:
    """The most recent `length` interactions (FULL: the most recent `max_history`)."""
    keep = max_history if length == FULL else min(length, max_history)
    return tuple(history[-keep:])


def user_rng(seed: int, user: str, purpose: str) -> random.Random:
    """A generator per (seed, user, purpose): string seeds hash the same in every process."""
    return random.Random(f"{seed}/{purpose}/{user}")


def llmrank_candidates(
    split: Split, pool: Sequence[str], *, n_negatives: int, seed: int
) -> tuple[str, ...]:
    """The target plus `n_negatives` items drawn uniformly from `pool` minus everything the
    user ever interacted with, shuffled. (LLMRank did not exclude seen items; we do.)"""
    unseen = [i for i in pool if i not in split.seen]
    if len(unseen) < n_negatives:
        raise ValueError(f"user {split.user}: only {len(unseen)} unseen items for "
                         f"{n_negatives} negatives")
    rng = user_rng(seed, split.user, "negatives")
    candidates = [split.target, *rng.sample(unseen, n_negatives)]
    rng.shuffle(candidates)
    return tuple(candidates)


def to_history(user: str, ratings: Iterable[Rating]) -> UserHistory:
    """The recagent view of a history: ratings on their own scale, with timestamps."""
    return UserHistory(user_id=user, interactions=[
        Interaction(item_id=r.item, rating=r.rating, ts=r.ts) if r.rating is not None
        else Interaction(item_id=r.item, liked=True, ts=r.ts)
        for r in ratings
    ])


def llmrank_cases(
    splits: Sequence[Split], pool: Sequence[str], *, setting: int, n_negatives: int,
    max_history: int, seed: int,
) -> list[Case]:
    """LLMRank protocol: the candidates depend only on the user, never on the setting."""
    return [
        Case(user=s.user, setting=setting, history=truncate(s.history, setting, max_history),
             target=s.target,
             candidates=llmrank_candidates(s, pool, n_negatives=n_negatives, seed=seed))
        for s in splits
    ]


def pipeline_case(
    split: Split, retriever: Retriever, *, setting: int, n_candidates: int, max_history: int
) -> Case:
    """Pipeline protocol: our retriever proposes the candidates; a missed target stays in
    the evaluation as a miss (the user is never dropped)."""
    history = truncate(split.history, setting, max_history)
    found = retriever.retrieve(to_history(split.user, history), n_candidates)
    return Case(user=split.user, setting=setting, history=history, target=split.target,
                candidates=tuple(c.item.id for c in found),
                retrieval_scores=tuple(c.score for c in found))


def pipeline_retrieval(
    split: Split, retriever: Retriever, *, setting: int, n_candidates: int, max_history: int,
    depth: int = max(RECALL_CUTOFFS),
) -> tuple[Case, dict[str, tuple[str, ...]]]:
    """The pipeline case, plus the top `depth` ids of each source (and of the fusion, for a
    hybrid retriever) so that the report can give every source's recall.

    The case's candidates are exactly what `retriever.retrieve(history, n_candidates)`
    returns; a hybrid source's list is max(fusion depth, n_candidates) long."""
    if not isinstance(retriever, HybridRetriever):
        case = pipeline_case(split, retriever, setting=setting, n_candidates=n_candidates,
                             max_history=max_history)
        deeper = retriever.retrieve(to_history(split.user, case.history), depth)
        return case, {getattr(retriever, "source", "retrieval"): _ids(deeper)}
    history = truncate(split.history, setting, max_history)
    lists = retriever.gather(to_history(split.user, history), n_candidates)
    fused = retriever.fuse(lists, max(depth, n_candidates))
    found = fused[:n_candidates]
    case = Case(user=split.user, setting=setting, history=history, target=split.target,
                candidates=tuple(c.item.id for c in found),
                retrieval_scores=tuple(c.score for c in found), retriever="hybrid")
    rankings = {name: _ids(c[:depth]) for name, c in lists.items()}
    return case, {**rankings, FUSION: _ids(fused[:depth])}


def _ids(candidates: Sequence[Candidate]) -> tuple[str, ...]:
    return tuple(c.item.id for c in candidates)


def sample_users(users: Sequence[str], n: int | None, seed: int) -> list[str]:
    """The first n of a seeded shuffle, in the input order (all users when n is None or
    larger). Samples are nested: a larger n keeps every user of a smaller one, so a run
    can grow its sample and reuse what it already paid for."""
    if n is None or n >= len(users):
        return list(users)
    order = list(users)
    random.Random(f"{seed}/sample").shuffle(order)
    chosen = set(order[:n])
    return [u for u in users if u in chosen]


# ---- rating prediction -------------------------------------------------------------------


@dataclass(frozen=True)
class RatingCase:
    """A few rated examples (most recent before the held-out ones) and ratings to predict."""

    user: str
    examples: tuple[Rating, ...]
    held_out: tuple[Rating, ...]


@dataclass(frozen=True)
class RatingSplit:
    cases: list[RatingCase]
    train: list[Rating]
    """Every rating except the held-out ones."""


def rating_split(dataset: Dataset, *, n_examples: int, n_held_out: int) -> RatingSplit:
    """Per user: the last `n_held_out` ratings are predicted from the `n_examples` before."""
    cases: list[RatingCase] = []
    train: list[Rating] = []
    for user, ratings in sorted(dataset.by_user().items(), key=lambda kv: _user_key(kv[0])):
        rated = _latest_per_item([r for r in ratings if r.rating is not None])
        if len(rated) <= n_held_out:
            train.extend(rated)
            continue
        held, before = rated[-n_held_out:], rated[:-n_held_out]
        cases.append(RatingCase(user=user, examples=tuple(before[-n_examples:]),
                                held_out=tuple(held)))
        train.extend(before)
    return RatingSplit(cases=cases, train=train)
