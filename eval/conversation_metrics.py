"""Recall@k over turn-item pairs, as iEvaLM counts it, computed by ranx.

iEvaLM (RUCAIBox/iEvaLM-CRS, src/model/metric.py) scores every (turn, target) pair on
its own against the turn's whole list: Recall@k is 1 when that target is in the top k,
NDCG@k is 1/log2(rank + 1) and MRR 1/rank for it alone (1-based rank; the turn's other
targets are not removed from the list), and every number is a mean over pairs. Here each
pair is one ranx query (`<turn>#<n>`) with one relevant item, whose run is the turn's
list: ranx's recall@k, ndcg@k and mrr then are exactly those per-pair values.

Two views: all pairs, and the pairs whose target is not mentioned in the context (a
system that repeats what was said scores on the first and not on the second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ranx import Qrels, Run, evaluate

METRICS = ("recall@1", "recall@10", "recall@50", "ndcg@10", "mrr")
VIEWS = ("all", "unmentioned")
NO_ANSWER = "__no_answer__"
"""The placeholder item of a turn a row gave nothing for: never relevant, so it scores 0."""

Pairs = dict[str, tuple[str, str, bool]]
"""pair id → (turn key, target item, target mentioned in the context)."""


def pair_id(turn: str, n: int) -> str:
    return f"{turn}#{n}"


def pairs_of(targets: Mapping[str, Sequence[str]], mentioned: Mapping[str, Sequence[str]]
             ) -> Pairs:
    """Every (turn, target) pair, with whether the target was already mentioned."""
    out: Pairs = {}
    for turn, items in targets.items():
        said = set(mentioned.get(turn, ()))
        for n, item in enumerate(items):
            out[pair_id(turn, n)] = (turn, item, item in said)
    return out


def qrels(pairs: Pairs, view: str) -> dict[str, dict[str, int]]:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}")
    return {p: {item: 1} for p, (_, item, said) in pairs.items()
            if view == "all" or not said}


def run_scores(ranking: Sequence[str]) -> dict[str, float]:
    """A list as ranx scores (length - position: no ties), a placeholder when empty."""
    if not ranking:
        return {NO_ANSWER: 0.0}
    return {item: float(len(ranking) - pos) for pos, item in enumerate(ranking)}


def scores(pairs: Pairs, lists: Mapping[str, Sequence[str]], view: str) -> dict[str, float]:
    """Mean metrics over the view's pairs; a turn without a list scores 0 on its pairs."""
    wanted = qrels(pairs, view)
    if not wanted:
        return dict.fromkeys(METRICS, 0.0) | {"pairs": 0}
    run = {p: run_scores(lists.get(pairs[p][0], ())) for p in wanted}
    got = evaluate(Qrels(wanted), Run(run), list(METRICS), make_comparable=True)
    assert isinstance(got, dict)
    return {m: float(got[m]) for m in METRICS} | {"pairs": len(wanted)}
