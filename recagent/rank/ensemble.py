"""Rankers built from rankers: permutation bootstrap against position bias, and score fusion.

Both wrap any `Ranker` (listwise, NIR, logprob), so each is a configuration of the same
pipeline. LLMs favour candidates by where they stand in the prompt (Hou et al., 2024);
ranking seeded shuffles and adding up Borda points averages that bias out. Fusion puts
the LLM's opinion next to the collaborative and retrieval scores a candidate carries, with
weights that can be fitted on a few validation users.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping, Sequence

import numpy as np

from recagent.errors import ConfigError, ResponseError
from recagent.rank.listwise import LLMRanking, Ranker
from recagent.types import Candidate, Interaction, Invocation, Item, Usage

LLM_SOURCE = "llm"
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)
"""The weights `fit_weights` tries for every source."""


def borda(orders: Sequence[Sequence[str]], n: int) -> dict[str, float]:
    """Borda points: n - position for every ranked item of every order, summed."""
    points: dict[str, float] = {}
    for order in orders:
        for position, item_id in enumerate(order):
            points[item_id] = points.get(item_id, 0.0) + (n - position)
    return points


def merged_invocation(rankings: Sequence[LLMRanking], failures: Sequence[str]) -> Invocation:
    """One audit record for several passes: summed cost, every raw answer kept."""
    first = rankings[0].invocation
    usage = Usage()
    for r in rankings:
        usage = usage + r.invocation.usage
    raw = json.dumps({"passes": [r.invocation.raw for r in rankings], "failed": list(failures)})
    return first.model_copy(update={
        "raw": raw, "usage": usage,
        "attempts": sum(r.invocation.attempts for r in rankings),
        "latency_s": sum(r.invocation.latency_s for r in rankings),
    })


def shuffled(candidates: Sequence[Candidate], index: int, seed: int) -> list[Candidate]:
    """The index-th seeded shuffle of the candidates (0: the given order). Seeded by the
    candidate ids, so a user's shuffles do not depend on who else is ranked or when."""
    order = list(candidates)
    if index:
        key = ",".join(c.item.id for c in candidates)
        random.Random(f"{seed}/{index}/{key}").shuffle(order)
    return order


class ShuffledRanker:
    """One pass of the inner ranker over the index-th shuffle of the candidates: the same
    order a BootstrapRanker's pass `index` sees, to measure how much one pass moves with
    the order it is shown."""

    def __init__(self, inner: Ranker, index: int, *, seed: int = 0) -> None:
        self.inner, self.index, self.seed = inner, index, seed

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        return self.inner.rank(history, shuffled(candidates, self.index, self.seed), k)


class BootstrapRanker:
    """Ranks `passes` seeded shuffles of the candidates (the first pass keeps the given
    order) and orders by Borda count; ties keep the given order. A failed pass is
    recorded and skipped; only if every pass fails does the ranking fail."""

    def __init__(self, inner: Ranker, passes: int, *, seed: int = 0) -> None:
        if passes < 1:
            raise ConfigError(f"bootstrap passes must be at least 1, got {passes}")
        self.inner = inner
        self.passes = passes
        self.seed = seed

    def shuffles(self, candidates: Sequence[Candidate]) -> list[list[Candidate]]:
        """The candidate orders of all passes (see `shuffled`)."""
        return [shuffled(candidates, p, self.seed) for p in range(self.passes)]

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        rankings: list[LLMRanking] = []
        failures: list[str] = []
        for order in self.shuffles(candidates):
            try:
                rankings.append(self.inner.rank(history, order, k))
            except Exception as e:  # one bad pass must not sink the others
                failures.append(f"{type(e).__name__}: {e}")
        if not rankings:
            raise ResponseError(f"all {self.passes} bootstrap passes failed: {failures[0]}",
                                "", self.passes)
        points = borda([[i for i, _ in r.order] for r in rankings], len(candidates))
        given = {c.item.id: n for n, c in enumerate(candidates)}
        ranked = sorted(points, key=lambda i: (-points[i], given.get(i, len(given))))
        reasons: dict[str, str | None] = {}
        for r in rankings:
            for item_id, reason in r.order:
                if reasons.get(item_id) is None:
                    reasons[item_id] = reason
        unknown = [u for r in rankings for u in r.unknown]
        return LLMRanking(
            order=[(i, reasons.get(i)) for i in ranked[:k]],
            invocation=merged_invocation(rankings, failures), unknown=unknown,
            scores={i: points.get(i, 0.0) / len(rankings) for i in given},
        )


def normalised(scores: Mapping[str, float], ids: Sequence[str]) -> dict[str, float]:
    """Min-max to [0, 1] over these candidates; a missing or constant score is 0."""
    values = [scores[i] for i in ids if i in scores and math.isfinite(scores[i])]
    if not values or max(values) == min(values):
        return dict.fromkeys(ids, 0.0)
    low, span = min(values), max(values) - min(values)
    return {i: (scores[i] - low) / span if i in scores and math.isfinite(scores[i]) else 0.0
            for i in ids}


def llm_scores(ranking: LLMRanking, ids: Sequence[str]) -> dict[str, float]:
    """The ranker's own scores, or Borda points of its order when it has none (an item it
    did not place scores 0, below every placed one)."""
    if ranking.scores:
        return dict(ranking.scores)
    return {**dict.fromkeys(ids, 0.0), **borda([[i for i, _ in ranking.order]], len(ids))}


def fuse(
    sources: Mapping[str, Mapping[str, float]], weights: Mapping[str, float], ids: Sequence[str]
) -> dict[str, float]:
    """Weighted sum of min-max normalised scores per source."""
    total = dict.fromkeys(ids, 0.0)
    for name, weight in weights.items():
        if weight == 0 or name not in sources:
            continue
        for i, value in normalised(sources[name], ids).items():
            total[i] += weight * value
    return total


def check_weights(weights: Mapping[str, float]) -> None:
    bad = {n: w for n, w in weights.items() if not math.isfinite(w) or w < 0}
    if bad:
        raise ConfigError(f"fusion weights must be finite and >= 0, got {bad}")
    if not any(weights.values()):
        raise ConfigError("fusion weights are all zero: give at least one a positive weight")


class FusionRanker:
    """The LLM ranker's scores fused with the scores each candidate carries in
    `scores_by_source` (semantic, co-occurrence, popularity, BPR, ...). The weight of
    the LLM is `weights["llm"]`; a zero LLM weight skips the LLM call entirely."""

    def __init__(self, inner: Ranker | None, weights: Mapping[str, float]) -> None:
        check_weights(weights)
        if inner is None and weights.get(LLM_SOURCE, 0.0) > 0:
            raise ConfigError("an LLM weight needs an LLM ranker to fuse")
        self.inner = inner
        self.weights = dict(weights)

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        ids = [c.item.id for c in candidates]
        sources: dict[str, dict[str, float]] = {}
        for c in candidates:
            for name, value in c.scores_by_source.items():
                sources.setdefault(name, {})[c.item.id] = value
        ranking: LLMRanking | None = None
        if self.inner is not None and self.weights.get(LLM_SOURCE, 0.0) > 0:
            ranking = self.inner.rank(history, candidates, k)
            sources[LLM_SOURCE] = llm_scores(ranking, ids)
        fused = fuse(sources, self.weights, ids)
        order = sorted(range(len(ids)), key=lambda n: -fused[ids[n]])  # stable: given order
        reasons = dict(ranking.order) if ranking else {}
        invocation = ranking.invocation if ranking else Invocation(
            template="fusion", template_hash="", model="", messages=[], raw="", attempts=0,
            usage=Usage(), latency_s=0.0)
        return LLMRanking(
            order=[(ids[n], reasons.get(ids[n])) for n in order[:k]], invocation=invocation,
            unknown=ranking.unknown if ranking else [], scores=fused,
        )


Example = tuple[Mapping[str, Mapping[str, float]], Sequence[str], str]
"""One validation user: scores per source, candidate ids, the item chosen next."""


def grid_weightings(sources: int, grid: Sequence[float] = WEIGHT_GRID) -> np.ndarray:
    """Every combination of grid weights for `sources` sources but all-zero: one per row."""
    return np.array([c for c in itertools.product(grid, repeat=sources) if any(c)])


def ndcg_by_weighting(
    examples: Sequence[Example], names: Sequence[str], weightings: np.ndarray, cutoff: int = 10
) -> np.ndarray:
    """NDCG@cutoff of every weighting (rows of `weightings`, one column per name) for every
    example: an (examples, weightings) array.

    With one relevant item NDCG is 1/log2(rank + 2) inside the cutoff, computed here in
    closed form because thousands of weightings are tried (reports use ranx). Ties keep
    the candidate order, as `FusionRanker` does; a target outside the candidates is 0."""
    out = np.zeros((len(examples), len(weightings)))
    for row, (sources, ids, target) in enumerate(examples):
        if target not in ids:
            continue
        by_name = [normalised(sources.get(n, {}), ids) for n in names]
        fused = weightings @ np.array([[scores[i] for i in ids] for scores in by_name])
        t = list(ids).index(target)
        ahead = (fused > fused[:, [t]]).sum(axis=1) + (fused[:, :t] == fused[:, [t]]).sum(axis=1)
        out[row] = np.where(ahead < cutoff, 1.0 / np.log2(ahead + 2.0), 0.0)
    return out


def fit_weights(
    examples: Sequence[Example],
    names: Sequence[str],
    grid: Sequence[float] = WEIGHT_GRID,
    *,
    cutoff: int = 10,
    resamples: int = 25,
    seed: int = 0,
) -> tuple[dict[str, float], float]:
    """Fusion weights for mean NDCG@cutoff over validation examples, by grid search
    bagged over `resamples` bootstrap resamples of the examples (0: one plain search).

    The best weighting on a few dozen users is a noisy, all-or-nothing choice; averaging
    the choices of resampled users (each scaled to sum 1) is steadier. Measured on
    validation users alone (benchmarks/fusion_rules.py), bagging held up better than the
    plain search on users it was not fitted on in 7 of 10 fits. The first best weighting in
    grid order wins a search. Returns the weights and their mean NDCG on all examples."""
    if not examples:
        raise ConfigError("fitting fusion weights needs at least one validation example")
    combos = grid_weightings(len(names), grid)
    ndcg = ndcg_by_weighting(examples, names, combos, cutoff)
    weights = combos[int(np.argmax(ndcg.mean(axis=0)))]
    informative = np.flatnonzero(ndcg.any(axis=1))  # the others score 0 under every weighting
    if resamples and len(informative):
        rng = np.random.default_rng(seed)
        picks = [combos[int(np.argmax(ndcg[rng.choice(informative, len(informative))]
                                      .mean(axis=0)))] for _ in range(resamples)]
        weights = np.sum([p / p.sum() for p in picks], axis=0) / resamples
    score = ndcg_by_weighting(examples, names, weights[None, :], cutoff).mean()
    return {n: float(w) for n, w in zip(names, weights, strict=True)}, float(score)
