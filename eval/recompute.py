"""Recompute a report's tables from its folder alone, and check them against metrics.json.

`python -m eval.recompute REPORT` reads only `REPORT/config.toml`, `REPORT/trec/*.gz` (qrels
and runs), `REPORT/state/*.jsonl.gz` (the LLM and fused variants' per-user results) and
`REPORT/state/fusion-*.json`: no data set, store or model. It recomputes with ranx, as the
report did, each run's NDCG and HR@1/5/10, users and failures per population and history
setting, the candidates' recall, the paired t-tests, and from the state files the validity
and cost tables and the fusion weights' shares; it also checks that each variant's
state agrees with its run file. Exit 0: every number matches metrics.json; 1: a mismatch
(each is printed); 2: the folder lacks what a recompute needs (reports made before the
compressed files existed). `--convert` first gzips a folder's uncompressed `trec/` files.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranx import Qrels, Run

from eval.baseline_rows import RETRIEVAL_SUFFIX
from eval.config import EvalConfig, load_config
from eval.conversation_config import CONVERSATION_KINDS, protocol_kind
from eval.metrics import NO_ANSWER, RANK_METRICS, mean_metrics, paired_tests, ranking_scores
from eval.report import COLUMNS, QRELS, RUN_SUFFIX, STATE_SUFFIX, write_gzip
from eval.results import UserResult
from eval.summary import (
    cost,
    judged_tests,
    own_retrieval_recall,
    setting_label,
    shares,
    validity,
)
from recagent.errors import ConfigError

EXIT_MATCH, EXIT_MISMATCH, EXIT_UNUSABLE = 0, 1, 2
TOLERANCE = 1e-9
"""Absolute and relative tolerance of a recomputed number (ranx is deterministic)."""

Ranked = dict[str, dict[str, float]]
"""A run or qrels as ranx takes them: {user: {item: score}}."""


class Unusable(Exception):
    """The folder lacks a file a recompute needs; the message names it."""


@dataclass
class Report:
    """A report folder's inputs: its config, qrels, runs and the variants' state."""

    config: EvalConfig
    qrels: Ranked
    runs: dict[str, dict[str, Ranked]]
    """Run name → setting label → {user: {item: score}}."""
    state: dict[str, list[UserResult]] = field(default_factory=dict)
    fusion: dict[str, Any] = field(default_factory=dict)

    @property
    def baselines(self) -> list[str]:
        """The rows without an LLM, in the report's order: the configured baselines, any
        other rows a harness added (sorted by name), then the product."""
        named = {*self.config.baselines.include, "product", *self.variants}
        extra = sorted(n for n in self.runs if n not in named)
        names = [*self.config.baselines.include, *extra, "product"]
        return [n for n in names if n in self.runs]

    @property
    def variants(self) -> list[str]:
        return [v.name for v in self.config.variants if v.name in self.runs]


def _text(path: Path) -> Iterator[str]:
    """The non-empty lines of a gzipped text file."""
    if not path.is_file():
        raise Unusable(f"{path} is missing")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        yield from (line for line in f if line.strip())


def _lines(path: Path) -> Iterator[list[str]]:
    return (line.split() for line in _text(path))


def read_qrels(path: Path) -> Ranked:
    """TREC qrels lines `user 0 item relevance`."""
    qrels: Ranked = {}
    for user, _, item, relevance in _lines(path):
        qrels.setdefault(user, {})[item] = float(relevance)
    return qrels


def read_run(path: Path) -> Ranked:
    """TREC run lines `user Q0 item rank score name`."""
    run: Ranked = {}
    for user, _, item, _, score, _ in _lines(path):
        run.setdefault(user, {})[item] = float(score)
    return run


def load_report(folder: Path) -> Report:
    """Everything a recompute reads, from the report folder only."""
    try:
        config = load_config(folder / "config.toml")
    except ConfigError as e:
        raise Unusable(str(e)) from None
    labels = [setting_label(s) for s in config.protocol.settings]
    ending = f".{labels[0]}{RUN_SUFFIX}"
    names = [p.name[:-len(ending)] for p in sorted((folder / "trec").glob(f"*{ending}"))]
    runs = {name: {label: read_run(folder / "trec" / f"{name}.{label}{RUN_SUFFIX}")
                   for label in labels} for name in names}
    state = {v.name: [UserResult.model_validate_json(line) for line in
                      _text(folder / "state" / f"{v.name}{STATE_SUFFIX}")]
             for v in config.variants}
    fusion = {}
    for variant in (v for v in config.variants if v.fusion):
        path = folder / "state" / f"fusion-{variant.name}.json"
        if not path.is_file():
            raise Unusable(f"{path} is missing")
        fusion[variant.name] = json.loads(path.read_text(encoding="utf-8"))
    return Report(config=config, qrels=read_qrels(folder / "trec" / QRELS), runs=runs,
                  state=state, fusion=fusion)


def recompute(report: Report) -> dict[str, Any]:
    """The parts of metrics.json that the folder's files determine, in its shape."""
    users = set(report.qrels)
    sample = {u for v in report.variants for r in report.runs[v].values() for u in r}
    partial = bool(report.variants) and sample != users
    out: dict[str, Any] = {"populations": {"all": _population(report, users, not partial)}}
    if partial:
        out["populations"]["llm_sample"] = _population(report, sample, True)
    settings = {setting_label(s): s for s in report.config.protocol.settings}
    out["validity"] = {v: {label: validity([r for r in rs if r.setting == s])
                           for label, s in settings.items()}
                       for v, rs in report.state.items()}
    out["cost"] = {v: cost(rs) for v, rs in report.state.items()}
    out["fusion"] = {v: _fusion_shares(record) for v, record in report.fusion.items()}
    return out


def _population(report: Report, users: set[str], with_variants: bool) -> dict[str, Any]:
    names = report.baselines + (report.variants if with_variants else [])
    qrels = Qrels({u: {i: int(r) for i, r in items.items()} for u, items in report.qrels.items()
                   if u in users})
    settings: dict[str, Any] = {}
    for label in (setting_label(s) for s in report.config.protocol.settings):
        runs = {n: Run({u: r for u, r in report.runs[n][label].items() if u in users}, name=n)
                for n in names}
        rows = {n: {"users": len(run.run), **mean_metrics(qrels, run, RANK_METRICS),
                    "failed": sum(NO_ANSWER in r for r in run.run.values())}
                for n, run in runs.items()}
        entry: dict[str, Any] = {"rows": rows}
        full = [b for b in report.baselines if b != "product"]
        if report.config.protocol.kind == "pipeline" and full:
            n = report.config.protocol.n_candidates  # a baseline's run lists every candidate
            reorders = [b for b in full if not b.endswith(RETRIEVAL_SUFFIX)]
            recall = mean_metrics(qrels, runs[reorders[0]], [f"recall@{n}"])
            entry["retrieval_recall"] = {f"recall@{n}": recall[f"recall@{n}"]}
            if own := own_retrieval_recall(qrels, runs, n):
                entry["own_retrieval"] = own
        seed = report.config.seed
        if "product" in runs:
            others = [runs[b] for b in report.baselines if b != "product"]
            entry["product_significance"] = paired_tests(qrels, runs["product"], others,
                                                         seed=seed)
        variants = [v for v in report.variants if v in rows]
        if variants and report.baselines:
            reference = max(report.baselines, key=lambda b: rows[b]["ndcg@10"])
            entry["reference"] = reference
            entry["significance"] = paired_tests(qrels, runs[reference],
                                                 [runs[v] for v in variants], seed=seed)
        if judged := judged_tests(report.config, qrels, runs):
            entry["judged"] = judged
        settings[label] = entry
    return {"users": len(users), "settings": settings}


def _fusion_shares(record: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """Each source's share of the fitted weights (the mean over cross-fitting folds)."""
    fits = record if isinstance(record, list) else [record]
    out = {}
    for key in fits[0]:
        weights = [fit[key]["weights"] for fit in fits]
        mean = {n: sum(w[n] for w in weights) / len(weights) for n in weights[0]}
        out[setting_label(int(key))] = shares(mean)
    return out


def state_problems(report: Report) -> list[str]:
    """Where a variant's per-user state disagrees with its run file."""
    labels = {s: setting_label(s) for s in report.config.protocol.settings}
    problems = []
    for variant, results in report.state.items():
        run = report.runs.get(variant, {})
        for r in results:
            ranked = run.get(labels.get(r.setting, "?"), {}).get(r.user)
            if ranked != ranking_scores(r.ranking):
                problems.append(f"state/{variant}{STATE_SUFFIX}: user {r.user}, history "
                                f"{labels.get(r.setting, r.setting)}: ranking differs from "
                                "its run file")
    return problems


def mismatches(expected: Any, got: Any, where: str = "") -> list[str]:
    """Every number or string of `got` that differs from `expected` (only keys `got` has)."""
    if isinstance(got, dict):
        if not isinstance(expected, dict):
            return [f"{where}: metrics.json has {expected!r}"]
        out = []
        for key, value in got.items():
            path = f"{where}.{key}" if where else str(key)
            out += (mismatches(expected[key], value, path) if key in expected
                    else [f"{path}: not in metrics.json"])
        return out
    if isinstance(got, bool) or not isinstance(got, int | float):
        return [] if got == expected else [f"{where}: {got!r} recomputed, {expected!r} reported"]
    if isinstance(expected, int | float) and (
            math.isclose(got, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
            or (math.isnan(got) and math.isnan(expected))):  # e.g. a t-test of identical runs
        return []
    return [f"{where}: {got!r} recomputed, {expected!r} reported"]


def coverage_problems(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Populations, settings and runs that metrics.json has and the recompute has not (a
    run file that is missing), or the other way round."""
    problems = []
    want, have = expected.get("populations", {}), got["populations"]
    for pop in sorted(set(want) | set(have)):
        if pop not in want or pop not in have:
            where = "metrics.json" if pop in want else "the recompute"
            problems.append(f"population {pop}: only in {where}")
            continue
        for label, entry in want[pop]["settings"].items():
            rows = set(have[pop]["settings"].get(label, {}).get("rows", {}))
            for run in sorted(set(entry["rows"]) ^ rows):
                problems.append(f"populations.{pop}.settings.{label}: run {run} only in "
                                f"{'metrics.json' if run in entry['rows'] else 'the recompute'}")
    for part in ("validity", "cost", "fusion"):
        for name in sorted(set(expected.get(part, {})) - set(got[part])):
            problems.append(f"{part}.{name}: in metrics.json, but no state file to recompute it")
    return problems


def table(recomputed: dict[str, Any]) -> str:
    """The recomputed metrics as Markdown tables, one per population and history setting."""
    lines: list[str] = []
    for pop, entry in recomputed["populations"].items():
        for label, setting in entry["settings"].items():
            lines += [f"## {pop}, history {label} ({entry['users']} users)", "",
                      "| run | users | " + " | ".join(c for _, c in COLUMNS)
                      + " | failed | p vs reference (NDCG@10) |", "|---" * 10 + "|"]
            sig = setting.get("significance", {})
            for run, row in setting["rows"].items():
                p = sig.get(run, {}).get("ndcg@10", {}).get("p")
                lines.append(f"| {run} | {row['users']} | "
                             + " | ".join(f"{row[m]:.4f}" for m, _ in COLUMNS)
                             + f" | {row['failed']} | {'' if p is None else f'{p:.3g}'} |")
            lines.append("")
    return "\n".join(lines)


def convert(folder: Path) -> list[Path]:
    """Gzip a report's uncompressed TREC files (made by an older writer) beside them."""
    made = []
    for path in sorted((folder / "trec").glob("*")):
        if path.suffix in (".run", ".txt"):
            made.append(write_gzip(path.with_name(path.name + ".gz"),
                                   path.read_text(encoding="utf-8")))
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.recompute", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="a report folder (eval/reports/NAME)")
    parser.add_argument("--convert", action="store_true",
                        help="first gzip the folder's uncompressed trec/ files")
    args = parser.parse_args(argv)
    if protocol_kind(args.report / "config.toml") in CONVERSATION_KINDS:
        from eval.conversation_recompute import main as recompute_dialogues

        return recompute_dialogues(args.report)
    if args.convert:
        for path in convert(args.report):
            print(f"wrote {path}")
    try:
        report = load_report(args.report)
        expected = json.loads((args.report / "metrics.json").read_text(encoding="utf-8"))
    except (Unusable, FileNotFoundError) as e:
        print(f"cannot recompute {args.report}: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    got = recompute(report)
    print(table(got))
    problems = (coverage_problems(expected, got) + mismatches(expected, got)
                + state_problems(report))
    for problem in problems:
        print(f"MISMATCH {problem}")
    if problems:
        print(f"{len(problems)} mismatch(es) against {args.report / 'metrics.json'}")
        return EXIT_MISMATCH
    print(f"every recomputed number matches {args.report / 'metrics.json'}")
    return EXIT_MATCH


if __name__ == "__main__":
    sys.exit(main())
