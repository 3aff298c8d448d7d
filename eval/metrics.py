"""Results → ranx Qrels and Runs → metrics and paired significance. No metric is hand-written.

A run gives each ranked item the score (list length - position), so ties cannot make
ranx and trec_eval disagree; a user with no ranking (a failure) gets one placeholder
document that is never relevant, so every tool scores that user 0 instead of skipping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ranx import Qrels, Run, compare, evaluate

from eval.protocols import Case
from eval.results import UserResult

RANK_METRICS = ["ndcg@1", "ndcg@5", "ndcg@10", "hit_rate@1", "hit_rate@5", "hit_rate@10"]
SIGNIFICANCE_METRICS = ["ndcg@10", "hit_rate@10"]
NO_ANSWER = "__no_answer__"
"""The placeholder document of a failed user."""


def qrels_for(cases: Iterable[Case]) -> Qrels:
    """One relevant item per user: the held-out target."""
    return Qrels({c.user: {c.target: 1} for c in cases})


def ranking_scores(ranking: Sequence[str]) -> dict[str, float]:
    if not ranking:
        return {NO_ANSWER: 0.0}
    n = len(ranking)
    return {item: float(n - pos) for pos, item in enumerate(ranking)}


def run_for(name: str, results: Iterable[UserResult]) -> Run:
    return Run({r.user: ranking_scores(r.ranking) for r in results}, name=name)


def candidates_run(name: str, cases: Iterable[Case]) -> Run:
    """The candidate lists in the order they were proposed (retrieval order)."""
    return Run({c.user: ranking_scores(c.candidates) for c in cases}, name=name)


def mean_metrics(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, float]:
    """Means over every user in `qrels`; per-user values stay on `run.scores`."""
    scores = evaluate(qrels, run, list(metrics), make_comparable=True)
    if isinstance(scores, dict):
        return {m: float(v) for m, v in scores.items()}
    return {metrics[0]: float(scores)}


def per_user(run: Run, metric: str) -> dict[str, float]:
    """Per-user values of a metric computed by `mean_metrics` on this run."""
    return {u: float(v) for u, v in run.scores[metric].items()}


def paired_tests(
    qrels: Qrels, reference: Run, others: Sequence[Run], metrics: Sequence[str] = (
        *SIGNIFICANCE_METRICS,), *, max_p: float = 0.05, seed: int = 42,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Paired Student's t-test (ranx.compare) of each run against `reference`, same users.

    Returns {run: {metric: {"p": p, "delta": run - reference, "significant": bool}}}."""
    report = compare(qrels, [reference, *others], metrics=list(metrics), stat_test="student",
                     max_p=max_p, random_seed=seed, make_comparable=True).to_dict()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    ref_scores = report[reference.name]["scores"]
    for run in others:
        entry = report[run.name]
        out[run.name] = {
            m: {"p": float(entry["comparisons"][reference.name][m]),
                "delta": float(entry["scores"][m]) - float(ref_scores[m]),
                "significant": float(entry["comparisons"][reference.name][m]) < max_p}
            for m in metrics
        }
    return out
