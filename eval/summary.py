"""EvalResult → one plain dict of numbers: metrics, significance, validity, cost, speed.

The Markdown table, the JSON file and the plot are all rendered from this dict, so the
three can never disagree.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from ranx import Qrels, Run

from eval.baseline_rows import RETRIEVAL_SUFFIX, what_it_saw
from eval.config import BaselineName, EvalConfig
from eval.harness import EvalResult
from eval.metrics import (
    RANK_METRICS,
    candidates_run,
    mean_metrics,
    paired_tests,
    per_user,
    qrels_for,
    ranking_scores,
    run_for,
)
from eval.protocols import FULL, RECALL_CUTOFFS, retrieval_history
from eval.results import UserResult

BASELINE_NAMES = set(get_args(BaselineName))
HISTORY_BUCKETS = [(1, 4), (5, 9), (10, 19), (20, 49), (50, 10**9)]
"""History-length bins of the plot when a config runs a single history setting."""


def setting_label(setting: int) -> str:
    return "full" if setting == FULL else str(setting)


def summarize(result: EvalResult) -> dict[str, Any]:
    cfg = result.config
    ds = result.dataset
    notes = list(ds.notes)
    if cfg.protocol.kind == "llmrank":
        notes += llmrank_notes(result)
    if cfg.protocol.kind == "pipeline" and cfg.protocol.retriever == "hybrid":
        fusion = cfg.protocol.hybrid_or_default
        weights = ", ".join(f"{k} {v:g}" for k, v in fusion.weights.items())
        notes.append(f"Candidates come from our hybrid retriever: weighted reciprocal-rank "
                     f"fusion (k={fusion.k_rrf}, {fusion.depth} items asked of each source; "
                     f"weights: {weights}); co-occurrence and popularity are fitted on the "
                     f"training interactions only. A user whose target was not retrieved "
                     f"counts as a miss (no user is filtered out).")
    elif cfg.protocol.kind == "pipeline" and cfg.protocol.retriever == "product":
        notes.append(_product_note(result) + " The candidates are the product's own: its "
                     "fitted retrieval over the training interactions; every ranker of this "
                     "report ranks them. A user whose target was not retrieved counts as a "
                     "miss (no user is filtered out).")
    elif cfg.protocol.kind == "pipeline":
        notes.append("Candidates come from our semantic retriever; a user whose target was "
                     "not retrieved counts as a miss (no user is filtered out).")
    if cfg.protocol.kind == "llmrank" and result.product_fit is not None:
        depth = cfg.product.depth if cfg.product else 0
        notes.append(_product_note(result) + " Here it orders the given candidates by its "
                     f"fitted retrieval (each source asked for its top {depth}; a candidate "
                     "none ranks that deep comes after, in the given order), then its "
                     "reranking.")
    if cfg.protocol.llm_only_when_retrieved:
        notes.append("The LLM was called only for users whose target was among their "
                     "candidates; the others score 0 whatever is answered, so every metric is "
                     "the same as calling it. Validity and cost cover the users called "
                     "('not_called' counts the rest).")
    if cfg.degraded_scores_zero:
        notes.append("A degraded LLM answer (model failed; candidate order shown) and any "
                     "exception score 0 and are counted in 'failed'.")
    out: dict[str, Any] = {
        "name": cfg.name,
        "product_fit": (result.product_fit.model_dump(mode="json")
                        if result.product_fit else None),
        "seed": cfg.seed,
        "llm_model": result.llm_model,
        "dataset": {"name": ds.name, "partial": ds.partial, "ratings": len(ds.ratings),
                    "items": len(ds.items), "evaluated_users": len(result.loo.splits),
                    "skipped_users": result.loo.skipped},
        "protocol": cfg.protocol.model_dump(mode="json"),
        "notes": notes,
        "populations": {},
    }
    all_users = _population(result, None, with_variants=not result.llm_users or
                            len(result.llm_users) == len(result.cases[_first(result)]))
    out["populations"]["all"] = all_users
    if result.variants and len(result.llm_users) < len(result.cases[_first(result)]):
        out["populations"]["llm_sample"] = _population(result, set(result.llm_users),
                                                       with_variants=True)
    out["validity"] = {v: {setting_label(s): validity(rs) for s, rs in result.results[v].items()}
                       for v in result.variants}
    out["cost"] = {v: cost([r for rs in result.results[v].values() for r in rs])
                   for v in result.variants}
    out["throughput"] = _throughput(result)
    out["history_seen"] = {setting_label(s): history_seen(result, s) for s in result.cases}
    out["training"] = result.training
    out["fusion"] = {v: {setting_label(s): shares(w) for s, w in by_setting.items()}
                     for v, by_setting in result.fusion_weights.items()}
    if result.cache is not None:
        out["cache"] = {"hits": result.cache.hits, "misses": result.cache.misses}
    plot_population = "llm_sample" if "llm_sample" in out["populations"] else "all"
    out["curve"] = {"population": plot_population,
                    **_curve(result, out["populations"][plot_population]["users_set"])}
    for pop in out["populations"].values():
        pop.pop("users_set")
    return out


def llmrank_notes(result: EvalResult) -> list[str]:
    """Exactly where this run's LLMRank protocol differs from LLMRank's code (RUCAIBox/LLMRank:
    props/ml-1m.yaml, props/overall.yaml, sample_candidates.py, trainer.py, model/rank.py)."""
    proto, threshold = result.config.protocol, result.config.dataset.positive_threshold
    if proto.conventions == "llmrank":
        cases = result.cases[next(iter(result.cases))]
        shown = [len(set(c.candidates) & {r.item for r in c.history}) for c in cases]
        first = (f"LLMRank's own conventions: every interaction is positive (the target is the "
                 f"user's last interaction whatever its rating, the history every earlier one, "
                 f"and the baselines learn from every training interaction); the "
                 f"{proto.n_negatives} negatives are drawn uniformly from every rated item but "
                 f"the target, so a negative may be an item the user rated: "
                 f"{statistics.fmean(shown):.2f} per user are in the history shown "
                 f"({sum(n > 0 for n in shown)} of {len(shown)} users have one). The baselines "
                 f"rank those; the product and LLM variants never return an item of the "
                 f"history (the Recommender's gate), which LLMRank's ranker did not do.")
    else:
        first = (f"Our conventions, not LLMRank's: the target is the last interaction rated "
                 f">= {threshold:g} (LLMRank: the last interaction, any rating); the history "
                 f"holds the earlier positive ones (LLMRank: every earlier interaction); the "
                 f"{proto.n_negatives} negatives are drawn from the items the user never "
                 f"interacted with (LLMRank: any item but the target); the baselines learn from "
                 f"positive training interactions (LLMRank: every training interaction).")
    prompts = sorted({v.max_history for v in result.config.variants})
    return [first, "Differences from LLMRank's code that remain: interactions sharing a "
            "timestamp are in a seeded random order (LLMRank: RecBole's time sort); the "
            "training data keeps each user's second-to-last interaction (LLMRank holds it out "
            "for validation); every user is evaluated (LLMRank: 200 random users); the "
            "baselines are ours (popularity counts training interactions like LLMRank's Pop; "
            f"item-kNN; BPR from `implicit`); history shown: up to {proto.max_history} items "
            "to the baselines" + (f", {', '.join(map(str, prompts))} in the LLM prompts"
                                  if prompts else "") + " (LLMRank: 50)."]


def history_seen(result: EvalResult, setting: int) -> dict[str, dict[str, Any]]:
    """What each run saw of each user's history at one setting: a description, and the
    mean and largest number of items over the run's users (same cases for every run)."""
    cfg, splits = result.config, {s.user: s for s in result.loo.splits}
    cases = {c.user: c for c in result.cases[setting]}
    learned = Counter(r.user for r in result.loo.positives)
    variants = {v.name: v for v in cfg.variants}
    out: dict[str, dict[str, Any]] = {}
    all_inputs = cfg.baselines.inputs == "all"
    for run, per_setting in result.results.items():
        users = [r.user for r in per_setting.get(setting, [])]
        base = run.removesuffix(RETRIEVAL_SUFFIX)
        if base in ("random", "popularity"):
            what, counts = what_it_saw(cfg, run), [0 for _ in users]
        elif run == "bpr" and setting == FULL and not all_inputs:
            what = "its learned user vector: every positive training interaction of the user"
            counts = [learned[u] for u in users]
        elif run == "product":
            what = "retrieval: every interaction before the cut, ratings kept"
            counts = [len(retrieval_history(splits[u], setting, cfg.protocol.max_history)
                          .interactions) for u in users]
        elif run in variants:
            n = variants[run].max_history
            what = (f"the prompt: the case's history, its last {n} items at most"
                    + ("; the fused baselines: all of it" if variants[run].fusion else ""))
            counts = [min(n, len(cases[u].history)) for u in users]
        elif base in BASELINE_NAMES:
            what = what_it_saw(cfg, run)
            counts = [len(cases[u].prior if all_inputs and cases[u].prior else cases[u].history)
                      for u in users]
        else:
            what = (f"the case's history: the most recent {cfg.protocol.max_history} at most"
                    + (" (BPR: folded in from it)" if run == "bpr" else ""))
            counts = [len(cases[u].history) for u in users]
        out[run] = {"what": what, "mean": statistics.fmean(counts) if counts else 0.0,
                    "max": max(counts, default=0)}
    return out


def _product_note(result: EvalResult) -> str:
    fit = result.product_fit
    assert fit is not None
    retrieval = ", ".join(f"{k} {v:g}" for k, v in fit.retrieval_weights.items())
    rerank = ", ".join(f"{k} {v:g}" for k, v in fit.rerank_weights.items())
    return (f"The `product` row is the shipped configuration: `recagent fit` run on this "
            f"report's training interactions ({fit.validation_users} validation users held "
            f"out inside them; no test target seen), without the LLM. Retrieval RRF weights: "
            f"{retrieval}; rerank weights: {rerank}. Each user goes through the product's "
            f"Recommender (its gate included).")


def _first(result: EvalResult) -> int:
    return next(iter(result.cases))


def _population(
    result: EvalResult, users: set[str] | None, *, with_variants: bool
) -> dict[str, Any]:
    runs = result.baselines + (result.variants if with_variants else [])
    settings: dict[str, Any] = {}
    chosen: set[str] = set()
    for setting, cases in result.cases.items():
        cases = [c for c in cases if users is None or c.user in users]
        chosen |= {c.user for c in cases}
        qrels = qrels_for(cases)
        rows: dict[str, Any] = {}
        ranx_runs = {}
        for name in runs:
            kept = [r for r in result.results[name][setting] if users is None or r.user in users]
            ranx_runs[name] = run_for(name, kept)
            rows[name] = {"users": len(kept), **mean_metrics(qrels, ranx_runs[name], RANK_METRICS)}
            rows[name]["failed"] = sum(r.failed for r in kept)
        entry: dict[str, Any] = {"rows": rows}
        if result.config.protocol.kind == "pipeline":
            n = result.config.protocol.n_candidates
            recall = mean_metrics(qrels, candidates_run("retrieval", cases), [f"recall@{n}"])
            entry["retrieval_recall"] = {f"recall@{n}": recall[f"recall@{n}"]}
            entry["retrieval_sources"] = _source_recall(
                qrels, result.retrieval.get(setting, {}), users)
            if own := own_retrieval_recall(qrels, ranx_runs, n):
                entry["own_retrieval"] = own
        if "product" in rows:  # is the product below any baseline? (delta: baseline - product)
            by_run = {name: run_for(name, [r for r in result.results[name][setting]
                                           if users is None or r.user in users])
                      for name in result.baselines}
            entry["product_significance"] = paired_tests(
                qrels, by_run.pop("product"), list(by_run.values()), seed=result.config.seed)
        variants = [v for v in result.variants if v in rows]
        if variants and result.baselines:
            reference = max(result.baselines, key=lambda b: rows[b]["ndcg@10"])
            entry["reference"] = reference
            entry["significance"] = paired_tests(
                qrels, run_for(reference, [r for r in result.results[reference][setting]
                                           if users is None or r.user in users]),
                [run_for(v, [r for r in result.results[v][setting]
                             if users is None or r.user in users]) for v in variants],
                seed=result.config.seed,
            )
        if judged := judged_tests(result.config, qrels, ranx_runs):
            entry["judged"] = judged
        settings[setting_label(setting)] = entry
    return {"users": len(chosen), "settings": settings, "users_set": chosen}


def own_retrieval_recall(qrels: Qrels, runs: Mapping[str, Run], n: int) -> dict[str, float]:
    """Recall@n of each baseline's own top n of the whole catalog (its `_retrieval` row)."""
    return {name: mean_metrics(qrels, run, [f"recall@{n}"])[f"recall@{n}"]
            for name, run in runs.items() if name.endswith(RETRIEVAL_SUFFIX)}


def judged_tests(config: EvalConfig, qrels: Qrels, runs: Mapping[str, Run]) -> dict[str, Any]:
    """Each variant with `judge_against`, tested against that run (paired t-test; delta:
    the variant minus it), where both ran on these users."""
    out: dict[str, Any] = {}
    for v in config.variants:
        if v.judge_against is not None and v.name in runs and v.judge_against in runs:
            tests = paired_tests(qrels, runs[v.judge_against], [runs[v.name]], seed=config.seed)
            out[v.name] = {"against": v.judge_against, **tests[v.name]}
    return out


def _source_recall(
    qrels: Qrels, rankings: dict[str, dict[str, tuple[str, ...]]], users: set[str] | None
) -> dict[str, dict[str, float]]:
    """Recall@20/50 of each source's own list (and the fusion's) over every user in qrels:
    a user the source proposed nothing to counts as a miss."""
    metrics = [f"recall@{n}" for n in RECALL_CUTOFFS]
    return {
        source: mean_metrics(qrels, Run({u: ranking_scores(ids) for u, ids in per_user.items()
                                         if users is None or u in users}, name=source), metrics)
        for source, per_user in rankings.items()
    }


def shares(weights: dict[str, float]) -> dict[str, float]:
    """Fitted weights as shares of their sum: fused scores are min-max normalised, so a
    source's share is its say in the order."""
    total = sum(weights.values())
    return {n: w / total for n, w in weights.items()}


def validity(results: Sequence[UserResult]) -> dict[str, int]:
    return {
        "users": len(results),
        "failed": sum(r.failed for r in results),
        "errors": sum(r.failed and not r.degraded for r in results),
        "degraded": sum(r.degraded for r in results),
        "parse_failures": sum(r.parse_failure for r in results),
        "repaired": sum(r.repaired for r in results),
        "invented_ids": sum(r.invented for r in results),
        "reasked": sum(r.reasked for r in results),
        "filled_items": sum(r.filled for r in results),
        "not_called": sum(r.llm_skipped for r in results),
    }


def cost(results: Sequence[UserResult]) -> dict[str, float]:
    answered = [r for r in results if r.attempts > 0]
    if not answered:
        return {"requests": 0}
    llm = [r.llm_s for r in answered]
    overhead = [max(r.total_s - r.llm_s, 0.0) for r in answered]
    requests = sum(r.attempts for r in answered)
    return {
        "users": len(answered),
        "requests": requests,
        "prompt_tokens": sum(r.prompt_tokens for r in answered),
        "completion_tokens": sum(r.completion_tokens for r in answered),
        "prompt_tokens_per_user": statistics.fmean(r.prompt_tokens for r in answered),
        "completion_tokens_per_user": statistics.fmean(r.completion_tokens for r in answered),
        "llm_s_per_user": statistics.fmean(llm),
        "llm_s_p95": _quantile(llm, 0.95),
        "overhead_ms_per_user": 1000 * statistics.fmean(overhead),
        "llm_s_total": sum(llm),
    }


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _throughput(result: EvalResult) -> dict[str, dict[str, float]]:
    """Speed of the sessions of this invocation that actually called the LLM."""
    out: dict[str, dict[str, float]] = {}
    for s in result.sessions:
        out[s.run] = {"users": s.users, "elapsed_s": s.elapsed_s, "llm_calls": s.llm_calls,
                      "cache_hits": s.cache_hits,
                      "users_per_s": s.users / s.elapsed_s if s.elapsed_s else 0.0,
                      "llm_calls_per_s": s.llm_calls / s.elapsed_s if s.elapsed_s else 0.0}
    return out


def _curve(result: EvalResult, users: set[str]) -> dict[str, Any]:
    """Mean NDCG@10 against history length: per setting in a sweep, else per length bin."""
    runs = result.baselines + result.variants
    sweep = len(result.cases) > 1
    points: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for name in runs:
        series: dict[str, list[float]] = {}
        for setting, cases in result.cases.items():
            cases = [c for c in cases if c.user in users]
            kept = [r for r in result.results[name][setting] if r.user in users]
            if not kept:
                continue
            run = run_for(name, kept)
            mean_metrics(qrels_for(cases), run, ["ndcg@10"])
            values = per_user(run, "ndcg@10")
            for r in kept:
                x = (_setting_x(setting, result) if sweep else _bucket(r.history_len))
                series.setdefault(x, []).append(values.get(r.user, 0.0))
        points[name] = {x: statistics.fmean(v) for x, v in series.items()}
        counts = {x: len(v) for x, v in series.items()}
    order = ([_setting_x(s, result) for s in result.cases] if sweep
             else [_bucket(lo) for lo, _ in HISTORY_BUCKETS])
    return {"x": "history length (most recent k)" if sweep else "history length (bin)",
            "order": order, "points": points, "users": counts}


def _setting_x(setting: int, result: EvalResult) -> str:
    return f"full (≤{result.config.protocol.max_history})" if setting == FULL else str(setting)


def _bucket(length: int) -> str:
    for lo, hi in HISTORY_BUCKETS:
        if lo <= length <= hi:
            return f"{lo}+" if hi >= 10**9 else f"{lo}-{hi}"
    return "0"
