"""`recagent eval` on the item cold start protocol end to end: the real embedded SmolLM2 in
llama.cpp's embedding mode for the catalog pass, real Chroma, the real CLI. Asserts what
must hold for any model: the report holds every row, the verdict and the pass; a second
run embeds nothing and still reports what the full pass cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recagent.cli.main import main
from recagent.llm.backends.artifacts import ArtifactStore

pytestmark = pytest.mark.integration

GENRES = ["horror", "animated", "space", "romance"]


def write_inputs(folder: Path) -> Path:
    catalog = folder / "items.csv"
    catalog.write_text("id,title,text\n" + "".join(
        f"{n},Film {n},A {GENRES[n % 4]} film number {n}.\n" for n in range(1, 41)))
    rows = [(f"u{u}", 1 + (u * 5 + k) % 32, 5, 100 * u + k) for u in range(12) for k in range(6)]
    # half the users then take one of four new films (33-36, the newest 10%), last
    rows += [(f"u{u}", 33 + (1 + u * 5) % 4, 5, 5000 + u) for u in range(6)]
    log = folder / "log.csv"
    log.write_text("user,item,rating,timestamp\n" + "".join(
        f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    config = folder / "cold.toml"
    config.write_text(f"""
name = "cold"
seed = 1
[dataset]
kind = "interactions"
path = "{catalog}"
ratings = "{log}"
[protocol]
kind = "item_coldstart"
n_negatives = 3
k = 4
[item_coldstart]
cold_share = 0.1
models = ["smollm2-135m"]
ridge = [0.1, 1.0]
rule = "the rule, in words"
[baselines]
include = ["random", "popularity"]
""")
    return config


def test_item_coldstart_end_to_end_then_a_cached_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], artifact_store: ArtifactStore
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    config, out = write_inputs(tmp_path), tmp_path / "report"
    argv = ["eval", str(config), "--home", str(home), "--out", str(out), "--json"]

    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)["item_coldstart"]
    verdict = first["verdict"]
    assert verdict["users"] == 6 and verdict["rule"] == "the rule, in words"
    rows = verdict["rows"]
    assert {"pop_attributes", "minilm_text", "minilm_mapped", "llm_text.smollm2-135m",
            "llm_mapped.smollm2-135m", "llm_fusion.smollm2-135m",
            "all_fusion.smollm2-135m"} <= set(rows)
    assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in rows.values())
    assert verdict["best_llm"].endswith(".smollm2-135m")
    assert isinstance(verdict["passed"], bool) and set(verdict["clauses"]) == {
        "llm_gain_at_least_min", "llm_vs_minilm_significant", "llm_beats_pop_attributes",
        "minilm_beats_pop_attributes"}
    llm_pass = first["passes"]["smollm2-135m"]
    assert (llm_pass["items"], llm_pass["written"]) == (40, 40)
    assert llm_pass["full_pass_s"] == llm_pass["seconds"] > 0
    assert first["cold"]["items"] == 4 and first["maps"]["llm_mapped.smollm2-135m"]["warm_items"]
    md = (out / "metrics.md").read_text()
    assert "## Item cold start" in md and "Verdict:" in md and "the rule, in words" in md

    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)["item_coldstart"]
    cached = again["passes"]["smollm2-135m"]
    assert (cached["written"], cached["unchanged"]) == (0, 40)
    assert cached["full_pass_s"] == llm_pass["seconds"]  # the full pass's cost, still told
    assert again["verdict"]["rows"] == verdict["rows"]  # same vectors, same numbers
