"""The recompute reads a report folder alone and finds every number of metrics.json again,
or names what differs."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from eval.recompute import EXIT_MATCH, EXIT_MISMATCH, EXIT_UNUSABLE, convert, main
from eval.report import write_gzip
from tests.conftest import REPO

COMMITTED = REPO / "eval" / "reports" / "retrieval_ml100k"


def copy(tiny_report: tuple[Path, object], tmp_path: Path) -> Path:
    folder = tmp_path / "report"
    shutil.copytree(tiny_report[0], folder)
    return folder


def edit_metrics(folder: Path, change) -> None:
    path = folder / "metrics.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_fresh_report_recomputes_exactly(tiny_report, capsys) -> None:
    assert main([str(tiny_report[0])]) == EXIT_MATCH
    out = capsys.readouterr().out
    assert "every recomputed number matches" in out
    assert "## llm_sample, history full (6 users)" in out and "| lp-fused |" in out
    judged = json.loads((tiny_report[0] / "metrics.json").read_text())
    assert "judged" in judged["populations"]["llm_sample"]["settings"]["full"]


def test_a_changed_metric_is_named(tiny_report, tmp_path, capsys) -> None:
    folder = copy(tiny_report, tmp_path)
    row = ("populations", "all", "settings", "full", "rows", "popularity", "ndcg@10")

    def bump(data: dict) -> None:
        entry = data
        for key in row[:-1]:
            entry = entry[key]
        entry[row[-1]] += 0.01

    edit_metrics(folder, bump)
    assert main([str(folder)]) == EXIT_MISMATCH
    assert f"MISMATCH {'.'.join(row)}:" in capsys.readouterr().out


def test_a_changed_p_value_and_share_are_named(tiny_report, tmp_path, capsys) -> None:
    folder = copy(tiny_report, tmp_path)

    def change(data: dict) -> None:
        sig = data["populations"]["llm_sample"]["settings"]["1"]["significance"]["lp"]
        sig["ndcg@10"]["p"] = 0.5 if sig["ndcg@10"]["p"] != 0.5 else 0.25
        shares = data["fusion"]["lp-fused"]["full"]
        shares["popularity"] += 0.1

    edit_metrics(folder, change)
    assert main([str(folder)]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "populations.llm_sample.settings.1.significance.lp.ndcg@10.p" in out
    assert "fusion.lp-fused.full.popularity" in out


def test_a_state_log_that_disagrees_with_its_run_is_named(tiny_report, tmp_path, capsys) -> None:
    folder = copy(tiny_report, tmp_path)
    path = folder / "state" / "lp.jsonl.gz"
    records = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]
    records[0]["ranking"] = records[0]["ranking"][::-1]
    records[1]["repaired"] = True
    write_gzip(path, "".join(json.dumps(r) + "\n" for r in records))
    assert main([str(folder)]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert f"user {records[0]['user']}" in out and "differs from its run file" in out
    assert "MISMATCH validity.lp." in out and ".repaired: 1 recomputed, 0 reported" in out


def test_a_missing_run_file_is_a_mismatch_and_missing_qrels_unusable(
    tiny_report, tmp_path, capsys
) -> None:
    folder = copy(tiny_report, tmp_path)
    (folder / "trec" / "itemknn.1.run.gz").unlink()
    (folder / "trec" / "itemknn.full.run.gz").unlink()
    assert main([str(folder)]) == EXIT_MISMATCH
    assert "run itemknn only in metrics.json" in capsys.readouterr().out
    (folder / "trec" / "qrels.txt.gz").unlink()
    assert main([str(folder)]) == EXIT_UNUSABLE
    assert "qrels.txt.gz is missing" in capsys.readouterr().err


def test_a_report_without_compressed_files_cannot_be_recomputed(
    tiny_report, tmp_path, capsys
) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    for name in ("config.toml", "metrics.json", "metrics.md"):
        shutil.copy(tiny_report[0] / name, folder / name)
    assert main([str(folder)]) == EXIT_UNUSABLE
    assert "cannot recompute" in capsys.readouterr().err


def test_convert_gzips_an_older_writers_plain_files(tiny_report, tmp_path) -> None:
    folder = copy(tiny_report, tmp_path)
    for path in (folder / "trec").glob("*.gz"):
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    made = convert(folder)
    assert {p.name for p in made} == {p.name for p in (tiny_report[0] / "trec").iterdir()}
    for path in made:
        assert path.read_bytes() == (tiny_report[0] / "trec" / path.name).read_bytes()


@pytest.mark.skipif(not (COMMITTED / "trec" / "qrels.txt.gz").is_file(),
                    reason="the committed retrieval_ml100k report has no gzipped TREC files")
def test_the_committed_retrieval_report_recomputes(capsys) -> None:
    assert main([str(COMMITTED)]) == EXIT_MATCH
    out = capsys.readouterr().out
    assert "| itemknn | 942 | 0.0467 |" in out


def test_a_run_file_the_config_does_not_name_is_read_and_reported(
    tiny_report, tmp_path, capsys
) -> None:
    folder = copy(tiny_report, tmp_path)  # as a harness's extra rows (item cold start) write
    for label in ("1", "full"):
        shutil.copy(folder / "trec" / f"popularity.{label}.run.gz",
                    folder / "trec" / f"by-genre.{label}.run.gz")
    assert main([str(folder)]) == EXIT_MISMATCH
    assert "run by-genre only in the recompute" in capsys.readouterr().out
