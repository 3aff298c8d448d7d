"""The "what came next" count and recency-weighted item-kNN, by hand-computed values."""

from __future__ import annotations

import pytest

from eval.datasets import Rating
from eval.protocols import Case
from eval.sequence_baselines import NextCountScorer, RecencyKNNScorer, catalog_top


def seq(user: str, items: str) -> list[Rating]:
    return [Rating(user=user, item=i, rating=4.0, ts=n) for n, i in enumerate(items)]


TRAIN = seq("a", "xyz") + seq("b", "xzw") + seq("c", "yw")


def case(history: str, candidates: str) -> Case:
    rows = tuple(seq("new", history))
    return Case(user="new", setting=0, history=rows, target=candidates[0],
                candidates=tuple(candidates), prior=rows)


def test_next_count_counts_what_came_within_the_window_after_the_last_items() -> None:
    scorer = NextCountScorer(TRAIN, window=2, last=1)
    # within 2 places after x: y, z (a); z, w (b); q is unknown: below the lowest known
    assert scorer.score(case("x", "yzwq")) == {"y": 1.0, "z": 2.0, "w": 1.0, "q": 0.0}
    # only the last item counts with last=1; with last=2 both do (y then x)
    both = NextCountScorer(TRAIN, window=2, last=2).score(case("yx", "zw"))
    assert both == {"z": 3.0, "w": 2.0}  # after y: z (a), w (c); after x: z 2, w 1


def test_recency_knn_weighs_the_most_recent_item_most() -> None:
    scorer = RecencyKNNScorer(TRAIN, decay=0.5)
    scores = scorer.score(case("wx", "yz"))
    # cos(x, y) = 1/sqrt(2*2), cos(x, z) = 2/sqrt(2*2); cos(w, y) = 1/2, cos(w, z) = 1/2
    assert scores["y"] == pytest.approx(0.5 + 0.5 * 0.5)
    assert scores["z"] == pytest.approx(1.0 + 0.5 * 0.5)


def test_own_top_leaves_out_every_item_before_the_cut() -> None:
    scorer = NextCountScorer(TRAIN, window=2, last=1)
    assert catalog_top(scorer, case("wx", "yz"), 2) == ("z", "y")
