"""Splits and candidate sets: leave-one-out by time, LLMRank's 1+N, our own retrieval.

Every function here is pure and seeded by (seed, user), so a user's candidates do not
depend on which other users are evaluated or in what order.

Leave-one-out, exactly (protocol version `PROTOCOL_VERSION`):

* **Order.** Each user's interactions are put oldest first; interactions that share a
  timestamp (MovieLens logs whole batches in one second) are put in a random order seeded
  by (config seed, user), starting from their item ids in natural order, so the order
  depends on neither the file order nor on other users.
* **Target.** The last positive interaction (rating >= `positive_threshold`, or implicit) in
  that order. **Tie rule:** when several positive ratings share the last positive
  timestamp (about a third of MovieLens users), the seeded order above makes the target
  a uniformly random one of them, the same for the same seed on every run and machine.
* **Cut.** What precedes the target in that order is "before the cut"; the target and
  everything after it (later timestamps, and tied interactions the order put after it)
  are never shown, never trained on, never counted as seen. A re-rated item counts once,
  at its latest interaction before the cut; an earlier interaction with the target
  itself is dropped too.
* **Positive**, for the target, the history and the baselines' training data alike: rated
  >= `positive_threshold`, or implicit (LLMRank's conventions: every interaction).
* **What each stage sees.** `Split.history`: the LLM's and the baselines' history (the
  positive interactions before the cut; all of them with `history = "all"`).
  `Split.prior`: every interaction before the cut, ratings kept: the pipeline's retriever
  gets it, so every item the user touched before the cut is excluded from the candidates.
  `LeaveOneOut.train`: every interaction before each user's cut, in that order, what the
  retrieval sources learn from; `LeaveOneOut.positives`: its positive part, the baselines'.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from eval.datasets import Dataset, Rating
from recagent.types import Candidate, Interaction, UserHistory
from retrieval.hybrid import HybridRetriever
from retrieval.types import Retriever

PROTOCOL_VERSION = 3
"""Changes whenever a protocol rule changes what a case holds, so that results stored
under an older rule are never reused (it is part of `EvalConfig.fingerprint`).
1: ties at the target's timestamp in file order; the pipeline excluded positive items only.
2: seeded tie order; the pipeline's retrieval history holds every prior interaction.
3: the baselines learn from positive training interactions only (were: every rating)."""
LLMRANK_POSITIVE = float("-inf")
"""The positive threshold of LLMRank's own conventions: every interaction is positive (its
ML-1M config loads no rating column: RUCAIBox/LLMRank props/ml-1m.yaml)."""
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
    """Every item of the user's, before and after the cut (LLMRank draws negatives outside)."""
    prior: tuple[Rating, ...] = ()
    """Every interaction before the cut, whatever its rating, oldest first: what the
    pipeline's retriever sees and excludes (empty: `history` stands in)."""

    @property
    def before_cut(self) -> tuple[Rating, ...]:
        return self.prior or self.history


@dataclass(frozen=True)
class LeaveOneOut:
    splits: list[Split]
    train: list[Rating]
    """Everything a model may learn from: all interactions except each user's target and
    what that user did after it."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Users that cannot be evaluated, by reason (no positive item, nothing before it)."""
    threshold: float = 4.0
    """What counted as positive for the targets (and so for `positives`)."""

    @property
    def positives(self) -> list[Rating]:
        """The positive training interactions: all that the baselines learn from."""
        return [r for r in self.train if is_positive(r, self.threshold)]


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
    found: tuple[Candidate, ...] = ()
    """The candidates as a hybrid retriever returned them, each source's score kept (what
    the product's reranker fuses); not part of `key`, which the ids already decide."""
    prior: tuple[Rating, ...] = ()
    """Every interaction before the cut, ratings kept, oldest first (as the product's
    retrieval sees it; cut like `history` at a shorter history setting): what the
    baselines see with `inputs = "all"`. Not part of `key` (history and target decide it)."""

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
    dataset: Dataset, *, threshold: float = 4.0, positive_history: bool = True, seed: int = 0,
    strict: bool = False,
) -> LeaveOneOut:
    """Target = each user's last positive interaction in the seeded time order (ties at
    one timestamp: see the module docstring); history = what came before it. `strict`:
    only what came strictly before the target's timestamp (an interaction logged in the
    same second is neither history nor training)."""
    splits: list[Split] = []
    train: list[Rating] = []
    skipped: dict[str, int] = {}
    for user, ratings in sorted(dataset.by_user().items(), key=lambda kv: _user_key(kv[0])):
        ratings = time_order(ratings, seed=seed, user=user)
        positions = [n for n, r in enumerate(ratings) if is_positive(r, threshold)]
        if not positions:
            skipped["no positive interaction"] = skipped.get("no positive interaction", 0) + 1
            train.extend(ratings)
            continue
        cut = positions[-1]
        target = ratings[cut].item
        before = [r for r in ratings[:cut] if not strict or r.ts < ratings[cut].ts]
        prior = [r for r in _latest_per_item(before) if r.item != target]
        history = [r for r in prior if is_positive(r, threshold)] if positive_history else prior
        train.extend(r for r in before if r.item != target)
        if not history:
            skipped["empty history"] = skipped.get("empty history", 0) + 1
            continue
        splits.append(Split(user=user, history=tuple(history), target=target,
                            seen=frozenset(r.item for r in ratings), prior=tuple(prior)))
    return LeaveOneOut(splits=splits, train=train, skipped=skipped, threshold=threshold)


def time_order(ratings: Sequence[Rating], *, seed: int, user: str) -> list[Rating]:
    """Oldest first; interactions sharing a timestamp in a random order seeded by (seed,
    user), drawn from their natural item-id order (so the file order does not matter)."""
    rng = user_rng(seed, user, "ties")
    by_ts: dict[int, list[Rating]] = {}
    for r in sorted(ratings, key=lambda r: (r.ts, _user_key(r.item), r.rating or 0.0)):
        by_ts.setdefault(r.ts, []).append(r)
    ordered: list[Rating] = []
    for ts in sorted(by_ts):
        group = by_ts[ts]
        if len(group) > 1:
            rng.shuffle(group)
        ordered.extend(group)
    return ordered


def validation_split(loo: LeaveOneOut, *, threshold: float = 4.0, seed: int = 0) -> LeaveOneOut:
    """Leave-one-out again, inside the training data: each user's last positive *training*
    interaction is the target. Tuning on these cases never sees a test target (nor what
    followed it), and their training data is a subset of the test run's."""
    train = Dataset(name="validation", ratings=tuple(loo.train), items={})
    return leave_one_out(train, threshold=threshold, positive_history=True, seed=seed)


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
    split: Split, pool: Sequence[str], *, n_negatives: int, seed: int, exclude_seen: bool = True
) -> tuple[str, ...]:
    """The target plus `n_negatives` items drawn uniformly from `pool` minus everything the
    user ever interacted with, shuffled. `exclude_seen=False`: LLMRank's own rule, any
    item but the target (a negative may be an item the user rated)."""
    excluded = split.seen if exclude_seen else {split.target}
    unseen = [i for i in pool if i not in excluded]
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
    max_history: int, seed: int, exclude_seen: bool = True,
) -> list[Case]:
    """LLMRank protocol: the candidates depend only on the user, never on the setting."""
    return [
        Case(user=s.user, setting=setting, history=truncate(s.history, setting, max_history),
             target=s.target,
             candidates=llmrank_candidates(s, pool, n_negatives=n_negatives, seed=seed,
                                           exclude_seen=exclude_seen),
             prior=prior_ratings(s, setting, max_history))
        for s in splits
    ]


def prior_ratings(split: Split, setting: int, max_history: int) -> tuple[Rating, ...]:
    """With the full history, every interaction before the cut; with a history cut to its
    last `setting` items (cold start), every interaction since the oldest item kept, as if
    the user had joined then."""
    prior = split.before_cut
    if setting != FULL:
        first = truncate(split.history, setting, max_history)[0]
        prior = prior[next(n for n, r in enumerate(prior) if r == first):]
    return tuple(prior)


def retrieval_history(split: Split, setting: int, max_history: int) -> UserHistory:
    """What the pipeline's retriever sees: `prior_ratings` (all of them are excluded from
    the candidates, whatever their rating)."""
    return to_history(split.user, prior_ratings(split, setting, max_history))


def pipeline_case(
    split: Split, retriever: Retriever, *, setting: int, n_candidates: int, max_history: int
) -> Case:
    """Pipeline protocol: our retriever proposes the candidates; a missed target stays in
    the evaluation as a miss (the user is never dropped)."""
    history = truncate(split.history, setting, max_history)
    found = retriever.retrieve(retrieval_history(split, setting, max_history), n_candidates)
    return Case(user=split.user, setting=setting, history=history, target=split.target,
                candidates=tuple(c.item.id for c in found),
                retrieval_scores=tuple(c.score for c in found),
                prior=prior_ratings(split, setting, max_history))


def pipeline_retrieval(
    split: Split, retriever: Retriever, *, setting: int, n_candidates: int, max_history: int,
    depth: int = max(RECALL_CUTOFFS), measured: Mapping[str, Retriever] | None = None,
) -> tuple[Case, dict[str, tuple[str, ...]]]:
    """The pipeline case, plus the top `depth` ids of each source (and of the fusion, for a
    hybrid retriever) so that the report can give every source's recall; `measured` are
    sources whose recall is reported next to them but that take no part in the fusion
    (a hybrid source with weight 0, kept for comparison).

    The case's candidates are exactly what `retriever.retrieve(history, n_candidates)`
    returns; a hybrid source's list is max(fusion depth, n_candidates) long."""
    seen_by_retrieval = retrieval_history(split, setting, max_history)
    alone = {name: _ids(source.retrieve(seen_by_retrieval, max(depth, n_candidates))[:depth])
             for name, source in (measured or {}).items()}
    if not isinstance(retriever, HybridRetriever):
        case = pipeline_case(split, retriever, setting=setting, n_candidates=n_candidates,
                             max_history=max_history)
        deeper = retriever.retrieve(seen_by_retrieval, depth)
        return case, {getattr(retriever, "source", "retrieval"): _ids(deeper), **alone}
    history = truncate(split.history, setting, max_history)
    lists = retriever.gather(seen_by_retrieval, n_candidates)
    fused = retriever.fuse(lists, max(depth, n_candidates))
    found = fused[:n_candidates]
    case = Case(user=split.user, setting=setting, history=history, target=split.target,
                candidates=tuple(c.item.id for c in found),
                retrieval_scores=tuple(c.score for c in found), retriever="hybrid",
                found=tuple(found), prior=prior_ratings(split, setting, max_history))
    rankings = {name: _ids(c[:depth]) for name, c in lists.items()}
    return case, {**rankings, **alone, FUSION: _ids(fused[:depth])}


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
