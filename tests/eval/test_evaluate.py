"""`recagent eval` end to end: a 3-user LLMRank config, the real embedded SmolLM2-135M,
real Chroma, the real CLI. Asserts what must hold for any model, and that a second run
makes no LLM call."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from eval.recompute import main as recompute
from recagent.cli.main import main
from recagent.llm.backends.artifacts import ArtifactStore

pytestmark = pytest.mark.integration


def gunzip(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()

GENRES = ["horror", "animated", "space", "romance", "western"]


def write_inputs(folder: Path) -> Path:
    catalog = folder / "items.csv"
    catalog.write_text("id,title,text\n" + "".join(
        f"{n},Film {n},A {GENRES[n % 5]} film number {n}.\n" for n in range(1, 41)))
    log = folder / "log.csv"
    log.write_text("user,item,rating,timestamp\n" + "".join(
        f"u{u},{1 + (u * 7 + k) % 40},{5 if k % 3 else 4},{100 * u + k}\n"
        for u in range(3) for k in range(8)))
    config = folder / "eval.toml"
    config.write_text(f"""
name = "it"
seed = 1
[dataset]
kind = "interactions"
path = "{catalog}"
ratings = "{log}"
[protocol]
kind = "llmrank"
n_negatives = 9
k = 5
[users]
llm_sample = 3
[baselines]
include = ["random", "popularity", "embedding"]
[llm]
preset = "smollm2-135m"
threads = 1
[[variants]]
name = "zs"
template = "rank_zero_shot"
explain = false
""")
    return config


def run(config: Path, home: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(["eval", str(config), "--home", str(home), "--out", str(out), "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_llmrank_end_to_end_then_a_free_rerun(tmp_path: Path, capsys,
                                             artifact_store: ArtifactStore) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    config = write_inputs(tmp_path)
    out = tmp_path / "report"

    first = run(config, home, out, capsys)
    row = first["populations"]["all"]["settings"]["full"]["rows"]["zs"]
    validity = first["validity"]["zs"]["full"]
    assert row["users"] == 3 and validity["users"] == 3
    assert first["throughput"]["zs"]["llm_calls"] >= 3  # one call per user, plus re-asks
    assert 0.0 <= row["ndcg@10"] <= 1.0
    history = {}
    for line in (tmp_path / "log.csv").read_text().splitlines()[1:]:
        user, item, *_ = line.split(",")
        history.setdefault(user, set()).add(item)
    targets = dict(line.split()[::2] for line in gunzip(out / "trec" / "qrels.txt.gz"))
    per_user: dict[str, list[str]] = {}
    for line in gunzip(out / "trec" / "zs.full.run.gz"):
        user, _, item, *_ = line.split()
        per_user.setdefault(user, []).append(item)
    for user, items in per_user.items():
        if items == ["__no_answer__"]:
            continue  # a failed user: counted in validity, scored 0
        assert len(items) == 5 and len(set(items)) == 5
        # candidates are the held-out target and items the user never saw
        assert not set(items) & (history[user] - {targets[user]})
    assert (out / "ndcg10_by_history.png").is_file()
    assert first["llm_model"] == "smollm2-135m"  # the report says which model answered
    assert "LLM: **smollm2-135m**" in (out / "metrics.md").read_text()
    assert recompute([str(out)]) == 0  # the folder alone gives every number again
    assert "every recomputed number matches" in capsys.readouterr().out

    again = run(config, home, out, capsys)
    assert again["throughput"]["zs"]["llm_calls"] == 0
    assert again["populations"]["all"]["settings"]["full"]["rows"]["zs"] == row

    for log in (out / "state").glob("*.jsonl"):
        log.unlink()
    cached = run(config, home, out, capsys)
    assert cached["throughput"]["zs"]["llm_calls"] == 0
    assert cached["throughput"]["zs"]["cache_hits"] >= 3
    assert cached["populations"]["all"]["settings"]["full"]["rows"]["zs"] == row


def test_a_bad_config_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[dataset]\nkind = "ml-100k"\npath = "."\n'
                   '[protocol]\nkind = "llmrank"\nnegatives = 3\n')
    assert main(["eval", str(bad)]) == 2
    assert "negatives" in capsys.readouterr().err


def test_a_model_flag_the_config_overrules_is_an_error(tmp_path: Path, capsys) -> None:
    config = write_inputs(tmp_path)  # its [llm] table names smollm2-135m
    out = tmp_path / "report"
    assert main(["eval", str(config), "--model", "qwen2.5-coder-0.5b", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--model qwen2.5-coder-0.5b" in err and "smollm2-135m" in err
    assert not out.exists()  # nothing was run or written


def test_item_vector_rows_fuse_and_are_judged(tmp_path: Path, capsys,
                                             artifact_store: ArtifactStore) -> None:
    """An [item_vectors] table on the LLMRank protocol: the real SmolLM2 catalog pass, only
    the named rows run, a fusion with them judged against the same fusion without them."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    config = write_inputs(tmp_path)
    text = config.read_text().split("[[variants]]")[0]
    fusion = 'method = "logprob"\nexplain = false\nfuse_llm = false\nfit_users = 2\nfit_folds = 3\n'
    config.write_text(text + f"""
[item_vectors]
models = ["smollm2-135m"]
rows = ["minilm_centred", "llm_centred.smollm2-135m"]

[[variants]]
name = "cf"
fusion = ["popularity", "minilm_centred"]
{fusion}
[[variants]]
name = "items"
fusion = ["popularity", "minilm_centred", "llm_centred.smollm2-135m"]
judge_against = "cf"
{fusion}""")
    out = tmp_path / "report"
    summary = run(config, home, out, capsys)
    entry = summary["populations"]["all"]["settings"]["full"]
    assert set(entry["rows"]) == {"random", "popularity", "embedding", "minilm_centred",
                                  "llm_centred.smollm2-135m", "cf", "items"}
    judged = entry["judged"]["items"]
    assert judged["against"] == "cf"
    assert judged["ndcg@10"]["delta"] == pytest.approx(
        entry["rows"]["items"]["ndcg@10"] - entry["rows"]["cf"]["ndcg@10"])
    passes = summary["item_vectors"]["passes"]
    assert passes["smollm2-135m"]["items"] == 40 and passes["smollm2-135m"]["written"] == 40
    assert summary["throughput"]["items"]["llm_calls"] == 0  # the LLM is never asked to rank
    md = (out / "metrics.md").read_text()
    assert "## Item vectors" in md and "| items | cf |" in md
    assert recompute([str(out)]) == 0
