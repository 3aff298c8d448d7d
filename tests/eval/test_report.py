"""The report writer: compressed, reproducible TREC files and per-user state, and the table
of what history each run saw."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from ranx import Qrels, Run, evaluate

from eval.metrics import ranking_scores
from eval.report import write_gzip, write_report
from eval.results import UserResult
from eval.summary import summarize
from tests.eval.conftest import REPORT_CONFIG


def lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def test_trec_files_are_gzipped_and_recompute_the_metrics(tiny_report) -> None:
    folder, result = tiny_report
    names = {p.name for p in (folder / "trec").iterdir()}
    assert names == {"qrels.txt.gz"} | {f"{run}.{label}.run.gz" for run in result.results
                                         for label in ("1", "full")}
    qrels = {u: {i: int(r)} for u, _, i, r in (x.split() for x in lines(folder / "trec" /
                                                                         "qrels.txt.gz"))}
    assert qrels == {c.user: {c.target: 1} for c in result.cases[0]}
    run: dict[str, dict[str, float]] = {}
    for line in lines(folder / "trec" / "popularity.full.run.gz"):
        user, _, item, _, score, name = line.split()
        assert name == "popularity"
        run.setdefault(user, {})[item] = float(score)
    stored = {r.user: ranking_scores(r.ranking) for r in result.results["popularity"][0]}
    assert run == stored
    summary = json.loads((folder / "metrics.json").read_text())
    expected = summary["populations"]["all"]["settings"]["full"]["rows"]["popularity"]
    assert evaluate(Qrels(qrels), Run(run), "ndcg@10") == pytest.approx(expected["ndcg@10"])
    assert (folder / "ndcg10_by_history.png").read_bytes()[:4] == b"\x89PNG"
    assert "Validity" in (folder / "metrics.md").read_text()


def test_every_variant_has_its_per_user_results_gzipped_beside_its_fit(tiny_report) -> None:
    folder, result = tiny_report
    for variant in ("lp", "lp-fused"):
        stored = [UserResult.model_validate_json(x)
                  for x in lines(folder / "state" / f"{variant}.jsonl.gz")]
        assert stored == [r for rs in result.results[variant].values() for r in rs]
        assert {r.user for r in stored} == set(result.llm_users)
    assert (folder / "state" / "fusion-lp-fused.json").is_file()
    assert not list((folder / "state").glob("popularity*"))  # baselines: the run files say all


def test_writing_the_same_report_twice_gives_the_same_bytes(tiny_report, tmp_path) -> None:
    folder, result = tiny_report
    again = tmp_path / "again"
    shutil.copytree(folder, again)
    (again / "trec" / "dropped-run.full.run.gz").write_bytes(b"stale")
    (again / "state" / "dropped-variant.jsonl.gz").write_bytes(b"stale")
    write_report(result, summarize(result), again, REPORT_CONFIG)
    for path in [*(folder / "trec").iterdir(), *(folder / "state").glob("*.gz")]:
        assert (again / path.relative_to(folder)).read_bytes() == path.read_bytes()
    # a run the report no longer has leaves no file a recompute would read
    assert not (again / "trec" / "dropped-run.full.run.gz").exists()
    assert not (again / "state" / "dropped-variant.jsonl.gz").exists()


def test_write_gzip_has_no_name_or_time_in_it(tmp_path: Path) -> None:
    a = write_gzip(tmp_path / "a.gz", "same text\n")
    b = write_gzip(tmp_path / "b.gz", "same text\n")
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()) == b"same text\n"


def test_the_report_says_what_history_each_run_saw(tiny_report) -> None:
    folder, result = tiny_report
    seen = json.loads((folder / "metrics.json").read_text())["history_seen"]
    full = {c.user: len(c.history) for c in result.cases[0]}
    mean = sum(full.values()) / len(full)
    assert seen["full"]["itemknn"]["mean"] == pytest.approx(mean)
    assert seen["full"]["popularity"]["mean"] == 0
    sample = [min(2, full[u]) for u in result.llm_users]  # the prompt shows max_history = 2
    assert seen["full"]["lp"]["mean"] == pytest.approx(sum(sample) / len(sample))
    assert seen["full"]["lp"]["max"] == 2 < seen["full"]["itemknn"]["max"]
    learned = [sum(r.user == u for r in result.loo.positives) for u in full]
    assert seen["full"]["bpr"]["mean"] == pytest.approx(sum(learned) / len(learned))
    assert seen["1"]["itemknn"]["max"] == 1
    md = (folder / "metrics.md").read_text()
    assert "## History each run saw" in md
    assert "| lp | full | the prompt: the case's history, its last 2 items at most |" in md
