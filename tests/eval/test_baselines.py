"""Baselines on hand-made co-occurrence data, scoring exactly the given candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.baselines import (
    BPRScorer,
    EmbeddingScorer,
    ItemKNNScorer,
    PopularityScorer,
    RandomScorer,
)
from eval.datasets import Rating
from eval.per_user import baseline_result
from eval.protocols import FULL, Case

# Users a, b had {1, 2}; c had {1, 3}; d had {4}.
TRAIN = [Rating(user=u, item=i, rating=5.0, ts=n) for n, (u, i) in enumerate(
    [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2"), ("c", "1"), ("c", "3"), ("d", "4")])]


def case(history: list[str], candidates: list[str], *, user: str = "z", setting: int = FULL,
         ratings: list[float] | None = None, retrieval: tuple[float, ...] = ()) -> Case:
    rs = ratings or [5.0] * len(history)
    return Case(user=user, setting=setting, target=candidates[0],
                history=tuple(Rating(user=user, item=i, rating=x, ts=n)
                              for n, (i, x) in enumerate(zip(history, rs, strict=True))),
                candidates=tuple(candidates), retrieval_scores=retrieval)


def test_popularity_counts_training_interactions_and_breaks_ties_by_candidate_order() -> None:
    scorer = PopularityScorer(TRAIN)
    c = case(["1"], ["3", "4", "2", "9"])
    assert scorer.score(c) == {"3": 1.0, "4": 1.0, "2": 2.0, "9": 0.0}
    assert baseline_result(scorer, c).ranking == ["2", "3", "4", "9"]


def test_item_knn_is_the_cosine_of_co_occurrence() -> None:
    scores = ItemKNNScorer(TRAIN).score(case(["1"], ["4", "3", "2", "9"]))
    # co(1,2) = 2 users, |1| = 3, |2| = 2 → 2/√6; co(1,3) = 1, |3| = 1 → 1/√3; 4 and 9: none
    assert scores["2"] == pytest.approx(2 / math.sqrt(6))
    assert scores["3"] == pytest.approx(1 / math.sqrt(3))
    assert scores["4"] == 0.0 and scores["9"] == 0.0


def test_item_knn_sums_over_the_history() -> None:
    scores = ItemKNNScorer(TRAIN).score(case(["2", "3"], ["1", "4"]))
    # s(2,1) + s(3,1) = 2/√6 + 1/√3
    assert scores["1"] == pytest.approx(2 / math.sqrt(6) + 1 / math.sqrt(3))
    assert scores["4"] == 0.0


def test_random_is_seeded_per_user_and_setting() -> None:
    c = case(["1"], ["2", "3", "4"])
    assert RandomScorer(1).score(c) == RandomScorer(1).score(c)
    assert RandomScorer(1).score(c) != RandomScorer(1).score(case(["1"], ["2", "3", "4"],
                                                                  user="other"))


class VectorStore:
    """Just the store method the embedding baseline reads."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self._v = {k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v)
                   for k, v in vectors.items()}

    def vectors(self, ids):
        return {i: self._v[i] for i in ids if i in self._v}


STORE = VectorStore({"1": [1, 0], "2": [0.9, 0.1], "3": [0, 1], "4": [-1, 0.2]})


def test_embedding_similarity_follows_liked_and_pushes_away_disliked() -> None:
    scorer = EmbeddingScorer(STORE)
    liked = scorer.score(case(["1"], ["3", "2", "4"]))
    assert baseline_result(scorer, case(["1"], ["3", "2", "4"])).ranking == ["2", "3", "4"]
    assert liked["2"] == pytest.approx(0.9 / math.hypot(0.9, 0.1), abs=1e-6)
    # liked 1, disliked 3 (rating 1): query = v1 - ½·v3 = (1, -0.5)
    mixed = scorer.score(case(["1", "3"], ["2", "4"], ratings=[5.0, 1.0]))
    assert mixed["2"] == pytest.approx((0.9 - 0.05) / math.hypot(0.9, 0.1), abs=1e-6)


def test_embedding_uses_the_retrieval_order_when_retrieval_made_the_candidates() -> None:
    scores = EmbeddingScorer(STORE).score(case(["1"], ["4", "3"], retrieval=(0.7, 0.2)))
    assert scores == {"4": 0.7, "3": 0.2}


CLUSTERS = [Rating(user=f"{g}{n}", item=str(i), rating=5.0, ts=i)
            for g, items in (("A", [1, 2, 3, 4]), ("B", [5, 6, 7, 8]))
            for n in range(30) for i in items if (i + n) % 4]  # each user misses one item


def test_bpr_learns_the_clusters_and_is_reproducible() -> None:
    bpr = BPRScorer(CLUSTERS, factors=8, iterations=200, seed=3)
    known = case(["1", "2"], ["4", "6"], user="A0")  # A0 had 1, 2, 3 but never 4
    scores = bpr.score(known)
    assert scores["4"] > scores["6"]
    again = BPRScorer(CLUSTERS, factors=8, iterations=200, seed=3).score(known)
    assert again == scores


def test_bpr_folds_in_a_truncated_history_instead_of_the_learned_user() -> None:
    bpr = BPRScorer(CLUSTERS, factors=8, iterations=200, seed=3)
    # The cut history says cluster B although user A1 was learned as cluster A.
    cut = case(["5", "6"], ["2", "7"], user="A1", setting=2)
    scores = bpr.score(cut)
    assert scores["7"] > scores["2"]
    unknown = bpr.score(case(["99"], ["2", "7"], user="new", setting=1))
    assert unknown == {"2": 0.0, "7": 0.0}
