"""iEvaLM's per-pair counting through ranx, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from eval.conversation_metrics import pairs_of, scores


def test_pairs_are_scored_one_by_one_against_the_whole_list() -> None:
    # turn t1 has targets a (rank 2) and b (rank 3, mentioned in the context); t2's target
    # c is not in its (empty) list
    pairs = pairs_of({"t1": ["a", "b"], "t2": ["c"]}, {"t1": ["b"]})
    lists = {"t1": ["x", "a", "b"], "t2": []}
    got = scores(pairs, lists, "all")
    assert got["pairs"] == 3
    assert got["recall@1"] == 0.0
    assert got["recall@10"] == pytest.approx(2 / 3)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)
    assert got["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 3)
    new = scores(pairs, lists, "unmentioned")
    assert new["pairs"] == 2 and new["recall@10"] == pytest.approx(1 / 2)
    assert new["mrr"] == pytest.approx((1 / 2) / 2)


def test_recall_at_50_counts_rank_50_not_51() -> None:
    pairs = pairs_of({"t": ["hit"]}, {})
    ranked = [f"i{n}" for n in range(49)] + ["hit"]
    assert scores(pairs, {"t": ranked}, "all")["recall@50"] == 1.0
    assert scores(pairs, {"t": ["z", *ranked]}, "all")["recall@50"] == 0.0
