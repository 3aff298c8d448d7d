"""`recagent fit`: the product's fusion weights, learnt on validation users of the catalog's own
interactions and saved beside the catalog, naming the LLM they were fitted for.

Two fits, both on users held out the same way (each one's last positive interaction is
the target, what came before is the history, and nothing at or after the target trains
the collaborative sources):
1. retrieval: the weighted-RRF weight of each candidate source, by coordinate ascent on
   recall@n (is the target among the candidates the ranker will see);
2. reranking: the weights that fuse the LLM's score with the candidates' own scores
   (fused retrieval score, text similarity, popularity, ...), by the bagged grid search
   of `recagent.rank.ensemble.fit_weights` on NDCG@10. The LLM keeps a weight only if it
   earns it out of sample: two-fold cross-fitting on the validation users, fused with the
   LLM against without it, paired t-test on per-user NDCG@10 (gain > 0 and p < 0.05).
   Small local models cannot rank zero-shot; without a measured gain the product does not
   pay for the LLM's ranking call. The LLM's share and the test are reported.

Pure logic: the caller gives the sources, the ranker and the rows (recagent.wiring and the
CLI wire them; eval runs the same fit on its own training split).
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.errors import ConfigError
from recagent.rank.ensemble import (
    LLM_SOURCE,
    Example,
    fit_weights,
    llm_scores,
    ndcg_by_weighting,
)
from recagent.rank.listwise import Ranker
from recagent.types import Interaction, Item, UserHistory
from retrieval.hybrid import RRF, HybridRetriever
from retrieval.types import NEGATIVE_RATING, POSITIVE_RATING, Candidate

Row = tuple[str, str, float | None, int | None]
"""(user, item, rating or None, timestamp or None), as the collaborative sources take it."""
RETRIEVAL_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
RERANK_FEATURES = (RRF, "semantic", "popularity")
"""Candidate scores fused with the LLM's: the fused retrieval score, text similarity and
popularity (each source's own score is already inside the fused one)."""
FIT_VERSION = 1
LLM_USERS = 200
"""Validation users when the LLM scores them (each costs a model call): the default then."""
LLM_MAX_P = 0.05
"""The LLM keeps its fitted weight only if its out-of-fold gain is significant at this level."""


class FittedConfig(BaseModel):
    """What `recagent fit` saves beside the catalog and the product then runs by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=FIT_VERSION, le=FIT_VERSION)] = FIT_VERSION
    collection: str
    retrieval_weights: dict[str, Annotated[float, Field(ge=0)]]
    """Source → weighted-RRF weight (0: not queried)."""
    rerank_weights: dict[str, Annotated[float, Field(ge=0)]]
    """Feature → fusion weight; "llm" is the LLM ranker's score."""
    llm_model: str | None
    """The model whose scores the rerank weights were fitted with (None: fitted without)."""
    llm_share: float
    """The LLM's weight over the sum of the rerank weights (0: the LLM adds nothing)."""
    validation_users: int
    validation: dict[str, float]
    """Validation metrics: recall@n of the fitted retrieval and of equal weights, NDCG@10 of
    the fitted reranking with and without the LLM and, with an LLM, its out-of-fold gain
    in NDCG@10 and that gain's paired-test p value."""
    interactions: int
    fitted_at: str

    @property
    def uses_llm(self) -> bool:
        return self.rerank_weights.get(LLM_SOURCE, 0.0) > 0


def fitted_path(home: Path, collection: str) -> Path:
    return home / "fitted" / f"{collection}.json"


def load_fitted(home: Path, collection: str) -> FittedConfig | None:
    """The saved fit of this collection, or None; an unreadable file is a ConfigError."""
    path = fitted_path(home, collection)
    if not path.is_file():
        return None
    try:
        return FittedConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as e:
        raise ConfigError(f"{path} is not a usable fit ({e.__class__.__name__}); run "
                          "`recagent fit` again") from None


def save_fitted(home: Path, fitted: FittedConfig) -> Path:
    """Written whole or not at all (a temporary file renamed over the old one)."""
    path = fitted_path(home, fitted.collection)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp",
                                     encoding="utf-8") as f:
        f.write(json.dumps(fitted.model_dump(mode="json"), indent=2))
    os.replace(f.name, path)
    return path


# ---- validation users -----------------------------------------------------------------

MIN_FIT_USERS = 10
"""Fewer validation users than this, and weights would be fitted to noise: refused."""


@dataclass(frozen=True)
class Held:
    """One validation user: the history before the target, and the target."""

    user: str
    history: UserHistory
    target: str


def positive(rating: float | None) -> bool:
    """Positive feedback as everywhere else: `Interaction.polarity` of a row without a like
    (a bare row counts); the rule spelled out, as it runs once per stored interaction."""
    return rating is None or rating >= POSITIVE_RATING


def hold_out(rows: Sequence[Row], n_users: int | None, seed: int, *, strict: bool = False
             ) -> tuple[list[Row], list[Held]]:
    """(training rows, validation users): a seeded sample of `n_users` users (None: every
    user the data allows), each with its last positive interaction as the target (ties on
    the last timestamp broken by a seeded choice); their rows at or after the target are
    left out of training. `strict`: only what came strictly before the target's timestamp
    is history and training (cut like eval's strict test cut); a user with nothing before
    that second is not held out."""
    by_user: dict[str, list[Row]] = {}
    for row in rows:
        by_user.setdefault(row[0], []).append(row)
    eligible = sorted(u for u, own in by_user.items()
                      if len(own) >= 2 and any(positive(r[2]) for r in own[1:]))
    count = len(eligible) if n_users is None else min(n_users, len(eligible))
    chosen = set(random.Random(f"{seed}/fit").sample(eligible, count))
    train: list[Row] = []
    held: list[Held] = []
    for user, own in by_user.items():
        if user not in chosen:
            train.extend(own)
            continue
        ordered = sorted(own, key=lambda r: r[3] if r[3] is not None else 0) \
            if all(r[3] is not None for r in own) else list(own)
        last = max(n for n, r in enumerate(ordered) if positive(r[2]) and n > 0)
        tied = [n for n, r in enumerate(ordered) if n > 0 and positive(r[2])
                and r[3] is not None and r[3] == ordered[last][3]] or [last]
        cut = min(random.Random(f"{seed}/{user}").choice(tied), last)
        target = ordered[cut]
        before = [r for r in ordered[:cut] if r[1] != target[1] and not (
            strict and target[3] is not None and r[3] is not None and r[3] >= target[3])]
        if not before:
            train.extend(own)
            continue
        train.extend(before)
        held.append(Held(user, history_of(user, before), target[1]))
    return train, held


def history_of(user: str, rows: Sequence[Row]) -> UserHistory:
    """Rows as a UserHistory: the latest interaction per item, in time order."""
    latest: dict[str, Row] = {}
    for row in rows:
        latest.pop(row[1], None)
        latest[row[1]] = row
    return UserHistory(user_id=user, interactions=[
        Interaction(item_id=item, rating=rating, ts=n)
        for n, (_, item, rating, _) in enumerate(latest.values())])


def row_rating(rating: float | None, liked: bool | None) -> float | None:
    """A stored interaction's rating as the sources read it: a like or dislike becomes the
    positive or negative end of the scale, a bare interaction stays None (positive)."""
    if rating is not None:
        return rating
    if liked is None:
        return None
    return 5.0 if liked else NEGATIVE_RATING - 1


# ---- the fits -------------------------------------------------------------------------


SEMANTIC_FLOOR = 0.01
"""The text source's weight beside a single source: it only fills a list the source leaves
short (the hybrid always keeps the text source, the only one for items nobody rated)."""


def single_source(names: Sequence[str], name: str) -> dict[str, float]:
    """Weights that use one source alone (the text source kept at SEMANTIC_FLOOR)."""
    return {s: 1.0 if s == name else SEMANTIC_FLOOR if s == "semantic" else 0.0 for s in names}


def fit_retrieval(
    retriever: HybridRetriever, held: Sequence[Held], n: int,
    grid: Sequence[float] = RETRIEVAL_GRID, rounds: int = 2,
) -> tuple[dict[str, float], float, float, dict[str, float]]:
    """Per-source RRF weights by coordinate ascent on recall@n, started from the best of
    equal weights and each source alone, so the fit never ends below its best single
    source: (weights, recall, recall of equal weights, recall of each source alone). Each
    source is asked once per user; only the fusion is recomputed."""
    lists = [(h.target, retriever.gather(h.history, n)) for h in held]
    names = list(retriever.sources)

    def recall(weights: Mapping[str, float]) -> float:
        if not any(weights.values()) or weights.get("semantic", 0.0) <= 0:
            return -1.0
        fused = HybridRetriever(retriever.sources, weights, k_rrf=retriever.k_rrf,
                                depth=retriever.depth)
        hits = [target in {c.item.id for c in fused.fuse(
            {s: found for s, found in per_source.items() if weights[s] > 0}, n)}
            for target, per_source in lists]
        return sum(hits) / max(len(hits), 1)

    equal = recall(dict.fromkeys(names, 1.0))
    alone = {name: recall(single_source(names, name)) for name in names}
    starts = [(dict.fromkeys(names, 1.0), equal),
              *((single_source(names, name), alone[name]) for name in names)]
    best, best_score = max(starts, key=lambda start: start[1])  # first of equals: equal
    for _ in range(rounds):
        for name in names:
            for value in grid:
                trial = {**best, name: value}
                score = recall(trial)
                if score > best_score:
                    best, best_score = trial, score
    return best, best_score, equal, alone


def rerank_examples(
    candidates: Sequence[tuple[Held, list[Candidate]]],
    llm: Callable[[Held, list[Candidate]], dict[str, float]] | None,
) -> list[Example]:
    """Each validation user's candidate scores (and the LLM's, if asked) and target."""
    examples: list[Example] = []
    for held, found in candidates:
        ids = [c.item.id for c in found]
        sources: dict[str, dict[str, float]] = {}
        for c in found:
            for name, value in c.scores_by_source.items():
                sources.setdefault(name, {})[c.item.id] = value
        if llm is not None:
            sources[LLM_SOURCE] = llm(held, found)
        examples.append((sources, ids, held.target))
    return examples


def ranker_scores(ranker: Ranker, items: Mapping[str, Item], k: int
                  ) -> Callable[[Held, list[Candidate]], dict[str, float]]:
    """The ranker's scores for a validation user; a failed call scores nothing (the fusion
    then leans on the other features), as in eval."""
    def scores(held: Held, found: list[Candidate]) -> dict[str, float]:
        history = [(i, items[i.item_id]) for i in held.history.chronological()
                   if i.item_id in items]
        try:
            ranking = ranker.rank(history, found, min(k, len(found)))
        except Exception:
            return {}
        return llm_scores(ranking, [c.item.id for c in found])
    return scores


def built_features(examples: Sequence[Example]) -> list[str]:
    """The rerank features some candidate has a score for: a source that is not built
    (retrieval weight 0) gives none, and gets no weight."""
    present = {name for sources, _, _ in examples for name, scores in sources.items() if scores}
    return [f for f in RERANK_FEATURES if f in present] or [RRF]


def fit_rerank(examples: Sequence[Example], *, with_llm: bool, seed: int
               ) -> tuple[dict[str, float], float]:
    """The bagged grid fit over the built features, or the retrieval order alone (the fused
    RRF score) where that scores higher on these users: never below the retrieval's own
    order."""
    names = [*built_features(examples), *([LLM_SOURCE] if with_llm else [])]
    weights, ndcg = fit_weights(examples, names, seed=seed)
    order = {n: 1.0 if n == RRF else 0.0 for n in names}
    alone = float(ndcg_by_weighting(examples, names, np.array([[order[n] for n in names]]))
                  .mean())
    return (order, alone) if alone > ndcg else (weights, ndcg)


def llm_gain(examples: Sequence[Example], seed: int) -> tuple[float, float]:
    """(mean gain in NDCG@10, p) of fusing the LLM, measured out of fold: each of two seeded
    halves of the users is scored with the weights fitted on the other half, with the LLM
    and without it; paired t-test over the users (p 1.0 when nothing differs)."""
    order = list(range(len(examples)))
    random.Random(f"{seed}/llm-gain").shuffle(order)
    halves = [order[::2], order[1::2]]
    gains: list[float] = []
    for test, train in (halves, halves[::-1]):
        if not test or not train:
            continue
        fold = [examples[i] for i in test]
        scored = []
        for with_llm in (True, False):
            weights, _ = fit_rerank([examples[i] for i in train], with_llm=with_llm, seed=seed)
            names = list(weights)
            scored.append(ndcg_by_weighting(fold, names, np.array([[weights[n] for n in names]]))
                          [:, 0])
        gains.extend((scored[0] - scored[1]).tolist())
    if not gains or not any(gains):
        return 0.0, 1.0
    from scipy.stats import ttest_rel  # here: scipy.stats takes ~0.5 s to import

    p = float(ttest_rel(np.array(gains), np.zeros(len(gains))).pvalue)
    return float(np.mean(gains)), (p if math.isfinite(p) else 1.0)


def fitted_at() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fit_catalog(
    *, collection: str, rows: Sequence[Row], build: Callable[[Sequence[Row]], HybridRetriever],
    items: Callable[[list[str]], Mapping[str, Item]], ranker: Ranker | None,
    llm_model: str | None, n: int = 20, k: int = 10, n_users: int | None = None,
    seed: int = 0, strict: bool = False, progress: Callable[[str], object] = lambda _: None,
    min_users: int = MIN_FIT_USERS,
) -> FittedConfig:
    """Both fits on `n_users` held-out users of `rows` (None: every user the data allows
    without an LLM to score, which costs no model call; LLM_USERS with one); `build` makes
    the hybrid retriever (every source, any weights) from training rows, `ranker` (None: no
    LLM) gives the LLM scores the rerank fit weighs against the candidates' own. `strict`:
    validation users cut strictly before their target's second (hold_out). Fewer than
    `min_users` validation users is refused (eval, which reports its count, may lower it)."""
    if n_users is None and ranker is not None:
        n_users = LLM_USERS
    train, held = hold_out(rows, n_users, seed, strict=strict)
    if not held:
        raise ConfigError(f"collection {collection!r} has no user with two or more "
                          "interactions to fit on; ingest interactions first")
    if len(held) < min_users:
        raise ConfigError(f"collection {collection!r} has only {len(held)} user(s) with two "
                          f"or more interactions; a fit needs at least {min_users} "
                          "validation users to mean anything, so none was saved (the "
                          "default weights stay in use)")
    progress(f"fitting on {len(held)} validation users ({len(train)} training interactions)")
    retriever = build(train)
    weights, recall, equal, alone = fit_retrieval(retriever, held, n)
    progress(f"retrieval recall@{n}: {recall:.3f} fitted, {equal:.3f} with equal weights; "
             "alone: " + ", ".join(f"{s} {r:.3f}" for s, r in alone.items()))
    fused = HybridRetriever(retriever.sources, weights, k_rrf=retriever.k_rrf,
                            depth=retriever.depth)
    found = [(h, fused.retrieve(h.history, n)) for h in held]
    plain, plain_ndcg = fit_rerank(rerank_examples(found, None), with_llm=False, seed=seed)
    chosen, ndcg = plain, plain_ndcg
    tested: dict[str, float] = {}
    if ranker is not None:
        needed = sorted({i.item_id for h, _ in found for i in h.history.interactions})
        progress(f"asking the LLM ({llm_model}) to score {len(found)} users' candidates")
        examples = rerank_examples(found, ranker_scores(ranker, items(needed), k))
        gain, p = llm_gain(examples, seed)
        tested = {"llm_gain_ndcg@10": gain, "llm_gain_p": p}
        progress(f"the LLM's out-of-fold gain in NDCG@10: {gain:+.4f} (paired t-test p = "
                 f"{p:.3g}); " + ("it keeps its weight" if gain > 0 and p < LLM_MAX_P else
                                  "not significant: weight 0, no ranking call"))
        if gain > 0 and p < LLM_MAX_P:
            chosen, ndcg = fit_rerank(examples, with_llm=True, seed=seed)
        else:
            chosen = {**plain, LLM_SOURCE: 0.0}
    total = sum(chosen.values()) or 1.0
    return FittedConfig(
        collection=collection, retrieval_weights=weights, rerank_weights=chosen,
        llm_model=llm_model if ranker is not None else None,
        llm_share=round(chosen.get(LLM_SOURCE, 0.0) / total, 4),
        validation_users=len(held),
        validation={f"recall@{n}": recall, f"recall@{n}_equal_weights": equal,
                    **{f"recall@{n}_{s}_alone": r for s, r in alone.items()},
                    "ndcg@10": ndcg, "ndcg@10_without_llm": plain_ndcg, **tested},
        interactions=len(rows), fitted_at=fitted_at())
