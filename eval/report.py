"""The report folder: metrics (Markdown + JSON), a PNG plot, TREC run and qrels files, the
LLM variants' per-user results, config.

The run and qrels files (`trec/*.gz`) are exactly what the metrics were computed from, and
`state/VARIANT.jsonl.gz` holds every LLM and fused variant's per-user result (validity,
tokens, time): small enough to commit, so anyone can recompute every number from the
folder alone (`python -m eval.recompute REPORT`, or `trec_eval -m ndcg_cut.1,5,10` on the
unzipped files). Gzip without a name or time stamp: the same report gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from eval.harness import EvalResult
from eval.metrics import ranking_scores
from eval.summary import setting_label

QRELS = "qrels.txt.gz"
RUN_SUFFIX = ".run.gz"
STATE_SUFFIX = ".jsonl.gz"

COLUMNS = [("ndcg@1", "NDCG@1"), ("ndcg@5", "NDCG@5"), ("ndcg@10", "NDCG@10"),
           ("hit_rate@1", "HR@1"), ("hit_rate@5", "HR@5"), ("hit_rate@10", "HR@10")]


def write_report(result: EvalResult, summary: dict[str, Any], out: Path,
                 config_text: str) -> list[Path]:
    """Write every report file into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "config.toml", out / "metrics.json", out / "metrics.md"]
    written[0].write_text(config_text, encoding="utf-8")
    written[1].write_text(json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8")
    written[2].write_text(markdown(summary), encoding="utf-8")
    written.append(plot(summary, out / "ndcg10_by_history.png"))
    written.extend(write_trec(result, out / "trec"))
    written.extend(write_state(result, out / "state"))
    return written


def write_gzip(path: Path, text: str) -> Path:
    """`text` gzipped with no file name and time stamp 0, so equal text gives equal bytes."""
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               mtime=0) as f:
        f.write(text.encode("utf-8"))
    return path


def write_trec(result: EvalResult, folder: Path) -> list[Path]:
    """qrels.txt.gz (one relevant target per user) and one run file per ranker and setting;
    gzipped run files of runs this report no longer has are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    first = next(iter(result.cases.values()))
    paths = [write_gzip(folder / QRELS, "".join(f"{c.user} 0 {c.target} 1\n" for c in first))]
    for name, per_setting in result.results.items():
        for setting, results in per_setting.items():
            lines = []
            for r in results:
                for rank, (item, score) in enumerate(ranking_scores(r.ranking).items(), 1):
                    lines.append(f"{r.user} Q0 {item} {rank} {score:g} {name}\n")
            paths.append(write_gzip(folder / f"{name}.{setting_label(setting)}{RUN_SUFFIX}",
                                    "".join(lines)))
    _remove_others(folder, RUN_SUFFIX, paths)
    return paths


def write_state(result: EvalResult, folder: Path) -> list[Path]:
    """Every LLM and fused variant's per-user results (all settings) as the report used
    them, one gzipped JSON Lines file per variant; the resumable logs stay beside them."""
    if result.variants:
        folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for variant in result.variants:
        lines = [r.model_dump_json() + "\n" for rs in result.results[variant].values()
                 for r in rs]
        paths.append(write_gzip(folder / f"{variant}{STATE_SUFFIX}", "".join(lines)))
    _remove_others(folder, STATE_SUFFIX, paths)
    return paths


def _remove_others(folder: Path, suffix: str, keep: list[Path]) -> None:
    """A renamed or dropped run must not leave a stale file that a recompute would read."""
    for path in folder.glob(f"*{suffix}"):
        if path not in keep:
            path.unlink()


def _f(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(summary: dict[str, Any]) -> str:
    ds, proto = summary["dataset"], summary["protocol"]
    lines = [f"# {summary['name']}", "",
             f"Data: **{ds['name']}** ({ds['ratings']} interactions, {ds['items']} items, "
             f"{ds['evaluated_users']} users evaluated; skipped: {ds['skipped_users'] or 'none'})."
             f" Protocol: **{proto['kind']}**, k={proto['k']}, seed {summary['seed']}."
             + (f" LLM: **{summary['llm_model']}**." if summary["llm_model"] else ""), ""]
    lines += [f"- {n}" for n in summary["notes"]] + [""]
    lines += _history_table(summary.get("history_seen", {}))
    lines += _training_table(summary.get("training", {}))
    for pop_name, pop in summary["populations"].items():
        title = "All users" if pop_name == "all" else "LLM sample (fixed seeded sample)"
        for label, entry in pop["settings"].items():
            lines += [f"## {title}, history: {label} — {pop['users']} users", ""]
            if "retrieval_recall" in entry:
                recall = ", ".join(f"{k} = {_f(v)}" for k, v in entry["retrieval_recall"].items())
                lines += [f"Retrieval {recall} (the target among the candidates).", ""]
            lines += _sources_table(entry.get("retrieval_sources", {}))
            if own := entry.get("own_retrieval"):
                lines += ["Each baseline's own top retrieval over the whole catalog (rows "
                          "`*_retrieval`): " + ", ".join(f"{k} recall = {_f(v)}"
                                                        for k, v in own.items()) + ".", ""]
            sig = entry.get("significance", {})
            vs_product = entry.get("product_significance", {})
            header = ["run", "users", *(c for _, c in COLUMNS), "failed"]
            if sig:
                header.append(f"p vs {entry['reference']} (NDCG@10 / HR@10)")
            if vs_product:
                header.append("p vs product (NDCG@10 / HR@10)")
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for run, row in entry["rows"].items():
                cells = [run, str(row["users"]), *(_f(row[m]) for m, _ in COLUMNS),
                         str(row["failed"])]
                if sig:
                    cells.append(_sig_cell(sig.get(run)))
                if vs_product:
                    cells.append(_sig_cell(vs_product.get(run)))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
            lines += _judged_table(entry.get("judged", {}))
    if summary.get("fusion"):
        lines += _fusion_table(summary["fusion"])
    if summary.get("validity"):
        lines += _validity_table(summary)
    if summary.get("cost"):
        lines += _cost_table(summary)
    lines += ["![NDCG@10 by history length](ndcg10_by_history.png)", "",
              "Recompute every table above from this folder alone: "
              "`python -m eval.recompute REPORT_FOLDER`.", ""]
    return "\n".join(lines)


def _history_table(seen: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """What each run saw of a user's history: the rankers do not all see the same."""
    if not seen:
        return []
    lines = ["## History each run saw (items per user, over the run's users)", "",
             "| run | history | what it saw | mean | max |", "|---|---|---|---|---|"]
    for label, runs in seen.items():
        lines += [f"| {run} | {label} | {e['what']} | {e['mean']:.1f} | {e['max']} |"
                  for run, e in runs.items()]
    return [*lines, ""]


def _training_table(training: dict[str, dict[str, Any]]) -> list[str]:
    """How each trained baseline was trained (RecBole's SASRec and GRU4Rec, on the CPU)."""
    if not training:
        return []
    lines = ["## Trained baselines (CPU)", "",
             "| model | epochs run | best epoch | validation NDCG@10 | training s | "
             "training windows | validation users | settings |", "|---" * 8 + "|"]
    for name, t in training.items():
        cached = " (loaded: trained by an earlier run on the same rows)" \
            if t["loaded_from_cache"] else ""
        settings = ", ".join(f"{k} {v}" for k, v in t["settings"].items())
        lines.append(f"| {name} | {t['epochs']} | {t['best_epoch']} | "
                     f"{t['best_validation_ndcg@10']:.4f} | {t['training_seconds']:.0f}{cached} | "
                     f"{t['windows']} | {t['validation_users']} | {settings} |")
    return [*lines, ""]


def _sources_table(sources: dict[str, dict[str, float]]) -> list[str]:
    """Recall of each retrieval source alone and of the list it proposed (the fusion)."""
    if not sources:
        return []
    metrics = list(next(iter(sources.values())))
    lines = ["| retrieval source | " + " | ".join(metrics) + " |",
             "|" + "---|" * (len(metrics) + 1)]
    lines += [f"| {name} | " + " | ".join(_f(row[m]) for m in metrics) + " |"
              for name, row in sources.items()]
    return [*lines, ""]


def _judged_table(judged: dict[str, dict[str, Any]]) -> list[str]:
    """The differences the config names for judgement (`judge_against`), with their tests."""
    if not judged:
        return []
    lines = ["| judged run | against | Δ NDCG@10 (p) | Δ HR@10 (p) |", "|---|---|---|---|"]
    for run, entry in judged.items():
        cells = [f"{entry[m]['delta']:+.4f} (p {entry[m]['p']:.3g}"
                 + ("*" if entry[m]["significant"] else "") + ")"
                 for m in ("ndcg@10", "hit_rate@10")]
        lines.append(f"| {run} | {entry['against']} | {cells[0]} | {cells[1]} |")
    return [*lines, ""]


def _sig_cell(entry: dict[str, dict[str, Any]] | None) -> str:
    if entry is None:
        return ""
    parts = []
    for metric in ("ndcg@10", "hit_rate@10"):
        e = entry[metric]
        mark = "*" if e["significant"] else ""
        parts.append(f"{e['p']:.3g}{mark} ({e['delta']:+.3f})")
    return " / ".join(parts)


def _fusion_table(fusion: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Each source's share of the fitted fusion weights: where the LLM has a say."""
    sources = list(dict.fromkeys(n for per in fusion.values() for w in per.values() for n in w))
    lines = ["## Fusion weights (share of each source, fitted on validation users)", "",
             "| variant | history | " + " | ".join(sources) + " |",
             "|" + "---|" * (len(sources) + 2)]
    for variant, per_setting in fusion.items():
        for label, shares in per_setting.items():
            lines.append(f"| {variant} | {label} | "
                         + " | ".join(_f(shares[n], 2) if n in shares else "-" for n in sources)
                         + " |")
    return [*lines, ""]


def _validity_table(summary: dict[str, Any]) -> list[str]:
    keys = ["users", "failed", "errors", "degraded", "parse_failures", "repaired",
            "invented_ids", "reasked", "filled_items", "not_called"]
    lines = ["## Validity of LLM answers", "",
             "| variant | history | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
    for variant, per_setting in summary["validity"].items():
        for label, counts in per_setting.items():
            lines.append(f"| {variant} | {label} | " + " | ".join(str(counts[k]) for k in keys)
                         + " |")
    return [*lines, ""]


def _cost_table(summary: dict[str, Any]) -> list[str]:
    lines = ["## Cost and speed", "",
             "| variant | requests | prompt tok/user | completion tok/user | LLM s/user "
             "| LLM s p95 | overhead ms/user | users/s | LLM calls/s | cache hits |",
             "|" + "---|" * 10]
    for variant, cost in summary["cost"].items():
        speed = summary.get("throughput", {}).get(variant, {})
        if not cost.get("requests"):
            lines.append(f"| {variant} | 0 |" + " |" * 8)
            continue
        lines.append(
            f"| {variant} | {cost['requests']} | {cost['prompt_tokens_per_user']:.0f} | "
            f"{cost['completion_tokens_per_user']:.0f} | {cost['llm_s_per_user']:.2f} | "
            f"{cost['llm_s_p95']:.2f} | {cost['overhead_ms_per_user']:.1f} | "
            f"{_f(speed.get('users_per_s', '-'), 3)} | {_f(speed.get('llm_calls_per_s', '-'), 3)}"
            f" | {speed.get('cache_hits', '-')} |")
    lines += ["", "LLM s/user is the model's wall time as measured when the answer was made "
              "(a cached answer keeps its original cost); users/s and calls/s cover only the "
              "users this invocation ran.", ""]
    return lines


def plot(summary: dict[str, Any], path: Path) -> Path:
    """NDCG@10 against history length, one line per baseline and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = summary["curve"]
    order: list[str] = curve["order"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    variants = set(summary.get("validity", {}))
    for name, points in curve["points"].items():
        xs = [x for x in order if x in points]
        style = "-o" if name in variants else "--."
        ax.plot(xs, [points[x] for x in xs], style, label=name)
    shown = [x for x in order if x in curve["users"]]
    ax.set_xticks(shown,
                  [f"{x}\n(n={curve['users'][x]})" for x in shown])
    ax.set_xlabel(curve["x"])
    ax.set_ylabel("NDCG@10")
    ax.set_title(f"{summary['name']} ({curve['population']} users)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

