"""One user's result: a baseline's ranking, a user the LLM was not asked about, and an LLM
run through the public `Recommender.recommend`, counted from the trace's typed fields."""

from __future__ import annotations

from typing import Any

from eval.baselines import Scorer
from eval.protocols import Case, to_history
from eval.results import UserResult
from recagent.rank.ensemble import llm_scores
from recagent.rank.listwise import Ranker
from recagent.recommender import Recommender
from recagent.types import Candidate, Item, Recommendation, RepairKind


def baseline_result(scorer: Scorer, case: Case) -> UserResult:
    """Every candidate by score, ties broken by candidate order (metrics cut their depth)."""
    scores = scorer.score(case)
    order = sorted(range(len(case.candidates)), key=lambda n: (-scores[case.candidates[n]], n))
    return UserResult(run=scorer.name, user=case.user, setting=case.setting,
                      history_len=len(case.history),
                      ranking=[case.candidates[n] for n in order])


def skipped_result(case: Case, run: str) -> UserResult:
    """A user the LLM was not asked about: its target is not a candidate, so it misses."""
    return UserResult(run=run, user=case.user, setting=case.setting,
                      history_len=len(case.history), ranking=list(case.candidates),
                      llm_skipped=True, case=case.key)


INVENTED: tuple[RepairKind, ...] = ("unknown_label", "not_candidate")
"""Repairs of answers that named no candidate: counted as `UserResult.invented`."""


def case_candidates(
    case: Case, items: dict[str, Item], sources: dict[str, dict[str, float]] | None = None
) -> list[Candidate]:
    """The case's candidates as the recommender takes them, with any scores to fuse."""
    return [
        Candidate(item=items[c], rank=n,
                  score=case.retrieval_scores[n] if case.retrieval_scores else 0.0,
                  scores_by_source={name: s[c] for name, s in (sources or {}).items()})
        for n, c in enumerate(case.candidates)
    ]


def case_llm_scores(
    ranker: Ranker, case: Case, items: dict[str, Item], k: int
) -> dict[str, float]:
    """The ranker's scores for one case, asked exactly as the facade asks (same history
    order, same candidates), so the call is shared through the response cache. A failed
    call scores nothing: fusion then leans on the other sources."""
    history = to_history(case.user, case.history)
    candidates = case_candidates(case, items)
    try:
        ranking = ranker.rank([(i, items[i.item_id]) for i in history.chronological()],
                              candidates, min(k, len(candidates)))
    except Exception:
        return {}
    return llm_scores(ranking, list(case.candidates))


def llm_result(
    recommender: Recommender, case: Case, run: str, k: int, items: dict[str, Item],
    degraded_scores_zero: bool, sources: dict[str, dict[str, float]] | None = None,
    found: list[Candidate] | None = None,
) -> UserResult:
    """One user through the public API; any exception is a failed user that scores 0.
    `found`: the case's candidates as a retriever gave them (order and source scores)."""
    base: dict[str, Any] = {"run": run, "user": case.user, "setting": case.setting,
                            "history_len": len(case.history), "case": case.key}
    candidates = found if found is not None else case_candidates(case, items, sources)
    try:
        rec = recommender.recommend(to_history(case.user, case.history),
                                    k=min(k, len(candidates)), candidates=candidates)
    except Exception as e:  # a failed user is counted, never dropped
        return UserResult(**base, ranking=[], failed=True, error=f"{type(e).__name__}: {e}")
    return _from_recommendation(rec, base, degraded_scores_zero)


def _from_recommendation(
    rec: Recommendation, base: dict[str, Any], degraded_scores_zero: bool
) -> UserResult:
    """The stored result, counted from the trace's typed fields (never from its words)."""
    t = rec.trace
    zero = t.degraded and degraded_scores_zero
    return UserResult.model_validate({
        **base,
        "ranking": [] if zero else [i.item_id for i in rec.items],
        "failed": zero,
        "error": t.degraded_detail or None,
        "degraded": t.degraded,
        "parse_failure": t.degraded_reason == "parse",
        "repaired": t.repaired,
        "invented": sum(r.count for r in t.repairs if r.kind in INVENTED),
        "reasked": t.attempts > 1,
        "filled": sum(r.count for r in t.repairs if r.kind == "filled"),
        "attempts": t.attempts,
        "prompt_tokens": t.usage.prompt_tokens,
        "completion_tokens": t.usage.completion_tokens,
        "llm_s": t.llm_latency_s,
        "total_s": t.latency_s,
    })
