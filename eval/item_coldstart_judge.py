"""The item cold start rule, checked exactly as the config states it, and its report section.

Rule (eval/configs/item_coldstart_*.toml, written before any run): the best LLM-derived
ranker (LLM vectors by similarity, mapped, or their fusion, any model) beats the best
MiniLM-only one by at least `min_relative_gain` relative NDCG@10 with a paired t-test
p < `max_p`; and both beat popularity-by-attributes (higher NDCG@10, p < `max_p`). The
"best" of each side is picked on the judged users themselves, for both sides alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranx import Run

from eval.harness import EvalResult
from eval.item_coldstart_config import (
    ALL_FUSION,
    EXPLORATORY,
    LLM_FUSION,
    LLM_MAPPED,
    LLM_TEXT,
    MINILM_FUSION,
    MINILM_MAPPED,
    MINILM_TEXT,
    NO_LLM_FUSION,
    POP_ATTRIBUTES,
    ItemColdStartConfig,
)
from eval.metrics import mean_metrics, paired_tests, qrels_for, run_for
from eval.protocols import FULL
from eval.summary import setting_label

LLM_KINDS = (LLM_TEXT, LLM_MAPPED, LLM_FUSION)
MINILM_ROWS = (MINILM_TEXT, MINILM_MAPPED, MINILM_FUSION)
METRICS = ["ndcg@10", "hit_rate@10"]


def judged_setting(spec: ItemColdStartConfig) -> int:
    return FULL if spec.judged_setting == "full" else int(spec.judged_setting)


def judge(result: EvalResult, spec: ItemColdStartConfig) -> dict[str, Any]:
    """Every row's NDCG@10 / HR@10 on the judged setting, its paired tests against
    popularity-by-attributes and against the best MiniLM-only row, and the verdict."""
    setting = judged_setting(spec)
    if setting not in result.cases:
        raise ValueError(f"judged_setting {spec.judged_setting!r} is not among the "
                         "protocol's history_lengths")
    cases = result.cases[setting]
    qrels = qrels_for(cases)
    names = [*result.baselines, *result.variants]
    runs = {n: run_for(n, result.results[n][setting]) for n in names}
    rows = {n: mean_metrics(qrels, r, METRICS) for n, r in runs.items()}
    llm = [n for n in names if n.split(".")[0] in LLM_KINDS]
    minilm = [n for n in MINILM_ROWS if n in runs]
    if not llm or not minilm or POP_ATTRIBUTES not in runs:
        raise ValueError("the rule needs LLM-derived, MiniLM-only and popularity-by-attributes "
                         "rows")
    best_llm = max(llm, key=lambda n: rows[n]["ndcg@10"])
    best_minilm = max(minilm, key=lambda n: rows[n]["ndcg@10"])
    seed = result.config.seed
    vs_pop = _tests(qrels, runs, POP_ATTRIBUTES, spec.max_p, seed)
    vs_minilm = _tests(qrels, runs, best_minilm, spec.max_p, seed)
    gain = _relative(rows[best_llm]["ndcg@10"], rows[best_minilm]["ndcg@10"])
    clauses = {
        "llm_gain_at_least_min": gain is not None and gain >= spec.min_relative_gain,
        "llm_vs_minilm_significant": _beats(vs_minilm[best_llm]),
        "llm_beats_pop_attributes": _beats(vs_pop[best_llm]),
        "minilm_beats_pop_attributes": _beats(vs_pop[best_minilm]),
    }
    return {
        "setting": setting_label(setting),
        "users": len(cases),
        "rule": spec.rule,
        "min_relative_gain": spec.min_relative_gain,
        "max_p": spec.max_p,
        "best_llm": best_llm,
        "best_minilm": best_minilm,
        "relative_gain": gain,
        "rows": {n: {**rows[n], "vs_pop_attributes": vs_pop.get(n),
                     "vs_best_minilm": vs_minilm.get(n)} for n in names},
        "clauses": clauses,
        "passed": all(clauses.values()),
        "llm_share": llm_share(result, spec.max_p),
    }


def llm_share(result: EvalResult, max_p: float) -> dict[str, dict[str, dict[str, Any]]]:
    """Per history setting, NDCG@10 of all_fusion.M minus nollm_fusion (paired t-test): what
    model M's item vectors add to the equal-weight fusion of everything else."""
    fused = [n for n in result.baselines if n.startswith(f"{ALL_FUSION}.")]
    if NO_LLM_FUSION not in result.results or not fused:
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for setting, cases in result.cases.items():
        runs = {n: run_for(n, result.results[n][setting]) for n in [NO_LLM_FUSION, *fused]}
        out[setting_label(setting)] = _tests(qrels_for(cases), runs, NO_LLM_FUSION, max_p,
                                             result.config.seed)
    return out


def _relative(value: float, reference: float) -> float | None:
    return value / reference - 1.0 if reference > 0 else None


def _beats(test: Mapping[str, Any] | None) -> bool:
    return test is not None and test["delta"] > 0 and bool(test["significant"])


def _tests(qrels: Any, runs: Mapping[str, Run], reference: str, max_p: float,
           seed: int) -> dict[str, dict[str, Any]]:
    """NDCG@10 paired t-test of every other row against `reference`."""
    others = [r for n, r in runs.items() if n != reference]
    got = paired_tests(qrels, runs[reference], others, ["ndcg@10"], max_p=max_p, seed=seed)
    return {n: t["ndcg@10"] for n, t in got.items()}


def _p(test: Mapping[str, Any] | None) -> str:
    if test is None:
        return "—"
    return f"{test['delta']:+.4f} (p {test['p']:.3g})"


def markdown(verdict: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """The report section: the rule and its verdict, every row, the catalog passes and
    the maps. `extra`: cold items, passes, maps and scoring times (eval.item_coldstart_run)."""
    v = verdict
    gain = v["relative_gain"]
    cold = extra["cold"]
    lines = ["", "## Item cold start", "",
             f"Cold items: {cold['items']} of {cold['catalog']} (the newest {cold['share']:.0%} "
             f"by first interaction, cut at {cold['cut']}); their {cold['train_dropped']} "
             f"interactions are out of every training set. Test users: those whose target is "
             f"cold ({v['users']}); candidates: the target + {cold['negatives']} unseen cold "
             "items.", "",
             f"**Rule** (committed in the config before the run): {v['rule'] or '(none given)'}",
             "",
             f"Judged on history `{v['setting']}`, {v['users']} users. Best LLM-derived: "
             f"**{v['best_llm']}** (NDCG@10 {v['rows'][v['best_llm']]['ndcg@10']:.4f}); best "
             f"MiniLM-only: **{v['best_minilm']}** "
             f"({v['rows'][v['best_minilm']]['ndcg@10']:.4f}); relative gain "
             + (f"{gain:+.1%}" if gain is not None else "undefined")
             + f" (needed ≥ {v['min_relative_gain']:.0%}, p < {v['max_p']:g}).", ""]
    lines += [f"- {name}: {'yes' if ok else 'no'}" for name, ok in v["clauses"].items()]
    lines += ["", f"**Verdict: {'PASSED' if v['passed'] else 'NOT PASSED'}**", "",
              f"Rows {', '.join(f'`{e}*`' for e in EXPLORATORY)} are exploratory: added after "
              "a smoke run, outside the rule.", "",
              "| ranker | NDCG@10 | HR@10 | Δ NDCG@10 vs pop_attributes (p) | "
              f"Δ vs {v['best_minilm']} (p) | scoring ms/user |", "|---|---|---|---|---|---|"]
    for name, row in sorted(v["rows"].items(), key=lambda kv: -kv[1]["ndcg@10"]):
        ms = extra["scoring_ms"].get(name)
        lines.append(f"| {name} | {row['ndcg@10']:.4f} | {row['hit_rate@10']:.4f} | "
                     f"{_p(row['vs_pop_attributes'])} | {_p(row['vs_best_minilm'])} | "
                     + (f"{ms:.2f}" if ms is not None else "—") + " |")
    if v.get("llm_share"):
        lines += ["", f"LLM's share: NDCG@10 of `{ALL_FUSION}.M` minus `{NO_LLM_FUSION}` "
                  "(popularity by attributes + both MiniLM rows, equal weights), paired t-test:",
                  "", "| history | row | Δ NDCG@10 (p) |", "|---|---|---|"]
        lines += [f"| {label} | {name} | {_p(test)} |"
                  for label, tests in v["llm_share"].items() for name, test in tests.items()]
    return "\n".join(lines) + "\n\n" + features_markdown(extra)


def features_markdown(extra: Mapping[str, Any]) -> str:
    """The catalog passes (what each embedder's item vectors cost) and the fitted maps."""
    lines = ["Catalog passes (one per embedder, cached by model and item text):", "",
             "| embedder | items | embedded this run | this run s | full pass s | s/item |",
             "|---|---|---|---|---|---|"]
    for name, p in extra["passes"].items():
        full = p.get("full_pass_s")
        per = p.get("full_pass_s_per_item")
        lines.append(f"| {name} | {p['items']} | {p['written']} | {p['seconds']:.1f} | "
                     + (f"{full:.1f}" if full is not None else "—") + " | "
                     + (f"{per:.4f}" if per is not None else "—") + " |")
    lines += ["", "Linear maps (ridge, fitted on warm items only; R² by 5-fold CV):", "",
              "| row | from | warm items | dims | ridge | CV R² |", "|---|---|---|---|---|---|"]
    for name, m in extra["maps"].items():
        lines.append(f"| {name} | {m['source']} | {m['warm_items']} | {m['text_dim']} → "
                     f"{m['target_dim']} | {m['ridge']:g} | {m['cv_r2']:.3f} |")
    return "\n".join(lines) + "\n"
