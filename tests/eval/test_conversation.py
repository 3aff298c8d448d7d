"""The conversation protocol end to end on a hand-made dialogue set with its own JSONL
catalog (real Chroma and embedder), then its recompute: only paths name the data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eval.conversation_recompute import main as recompute
from eval.conversation_rows import LLM_ROWS
from eval.evaluate import evaluate_config
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.wiring import Settings

FILMS = [
    {"id": "h1", "title": "Night Terror (1980)", "genres": ["Horror"], "plot": "A haunted house."},
    {"id": "h2", "title": "Deep Fear (1985)", "genres": ["Horror"], "plot": "Ghosts in a cabin."},
    {"id": "h3", "title": "The Crypt (1990)", "genres": ["Horror"], "plot": "A vampire wakes."},
    {"id": "c1", "title": "Big Laughs (1995)", "genres": ["Comedy"], "plot": "Two clowns."},
    {"id": "c2", "title": "Silly Summer (1998)", "genres": ["Comedy"], "plot": "A funny trip."},
    {"id": "c3", "title": "Office Fun (2001)", "genres": ["Comedy"], "plot": "Pranks at work."},
    {"id": "s1", "title": "Star Voyage (1977)", "genres": ["Sci-Fi"], "plot": "Space war."},
    {"id": "s2", "title": "Robot Dawn (1984)", "genres": ["Sci-Fi"], "plot": "Robots rise."},
]


def _turn(dialog: str, turn: int, context: list[str], rec: list[str]) -> str:
    return json.dumps({"dialog_id": dialog, "turn_id": turn, "context": context, "rec": rec})


@pytest.fixture
def report(tmp_path: Path, artifact_store: ArtifactStore) -> Path:
    (tmp_path / "films.jsonl").write_text("".join(json.dumps(f) + "\n" for f in FILMS))
    (tmp_path / "train.jsonl").write_text("\n".join([
        _turn("a", 1, ["I love Night Terror (1980)"], ["Deep Fear (1985)"]),
        _turn("b", 1, ["Anything like Deep Fear (1985)?"], ["The Crypt (1990)"]),
        _turn("c", 1, ["Big Laughs (1995) was great"], ["Silly Summer (1998)"]),
        _turn("d", 1, ["hi"], ["Deep Fear (1985)", "Star Voyage (1977)"]),
    ]) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join([
        _turn("x", 1, ["I want a scary movie like Night Terror (1980)"], ["Deep Fear (1985)"]),
        _turn("x", 3, ["I want a scary movie like Night Terror (1980)", "Try Deep Fear (1985)",
                       "Seen it. More ghosts?"], ["The Crypt (1990)", "Night Terror (1980)"]),
        _turn("y", 1, ["Something funny, like Big Laughs (1995)"], ["c2"]),
    ]) + "\n")
    config = tmp_path / "conv.toml"
    config.write_text(f"""name = "tiny_conversation"
[dataset]
kind = "dialogues"
catalog = "{tmp_path / 'films.jsonl'}"
train = "{tmp_path / 'train.jsonl'}"
test = "{tmp_path / 'test.jsonl'}"
[protocol]
kind = "conversation"
rows = ["popularity", "comention_knn", "text"]
judged_row = "comention_knn"
judgement = "a test rule"
[[published]]
system = "Someone"
source = "a paper"
protocol = "theirs"
recall_10 = 0.5
""")
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    out = tmp_path / "report"
    _summary, folder = evaluate_config(config, out=out, settings=Settings(home=home),
                                      progress=False)
    assert folder == out
    return out


def test_rows_scores_and_recompute(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["data"] | {"catalog": 8} == summary["data"]
    assert summary["data"]["pairs"] == 4 and summary["data"]["mentioned_pairs"] == 1
    pop = summary["rows"]["popularity"]
    # popularity from train recommendations: Deep Fear (2), then The Crypt, Silly Summer,
    # Star Voyage (1 each, by id)
    assert pop["all"]["recall@1"] == pytest.approx(1 / 4)   # x_1's Deep Fear at rank 1
    knn = summary["rows"]["comention_knn"]
    # x_1: Deep Fear first; x_3: a four-way tie (ids) puts Night Terror 1st, The Crypt 3rd;
    # y_1: Silly Summer first
    assert knn["all"]["recall@1"] == pytest.approx(3 / 4)
    assert knn["all"]["mrr"] == pytest.approx((1 + 1 / 3 + 1 + 1) / 4)
    assert knn["unmentioned"]["recall@1"] == pytest.approx(2 / 3)  # Night Terror was said
    for row in summary["rows"].values():                    # nothing outside, 50 asked, 8 exist
        assert row["out_of_catalog"] == 0 and row["short_lists"] == 3
    assert "Someone (published: a paper)" in (report / "metrics.md").read_text()
    assert recompute(report) == 0
    capsys.readouterr()
    bad = json.loads((report / "metrics.json").read_text())
    bad["rows"]["text"]["all"]["mrr"] += 0.1
    (report / "metrics.json").write_text(json.dumps(bad))
    assert recompute(report) == 1
    assert "rows.text.all.mrr" in capsys.readouterr().out


def test_the_documented_quick_config_is_valid(tmp_path: Path) -> None:
    from conftest import REPO

    from eval.conversation_config import load_conversation_config

    doc = (REPO / "docs" / "conversation.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    (tmp_path / "quick.toml").write_text(block, encoding="utf-8")
    config = load_conversation_config(tmp_path / "quick.toml")
    assert config.dataset.kind == "dialogues" and config.protocol.kind == "conversation"
    assert not LLM_ROWS & set(config.protocol.rows)  # runs without a model


def test_a_run_killed_mid_line_resumes_to_the_same_report(report: Path, tmp_path: Path) -> None:
    import gzip

    first = json.loads((report / "metrics.json").read_text())
    finished = report / "state" / "comention_knn.jsonl.gz"
    done, cut = gzip.decompress(finished.read_bytes()).decode().splitlines()[:2]
    finished.unlink()                          # the row as a kill leaves it: one dialogue
    (report / "state" / "comention_knn.jsonl").write_text(done + "\n" + cut[: len(cut) // 2])
    evaluate_config(tmp_path / "conv.toml", out=report, settings=Settings(home=tmp_path / "home"),
                    progress=False)
    again = json.loads((report / "metrics.json").read_text())
    assert again["rows"]["comention_knn"]["all"] == first["rows"]["comention_knn"]["all"]
    records = [json.loads(line) for line in gzip.decompress(finished.read_bytes()).splitlines()]
    assert sorted(r["dialog"] for r in records) == ["x", "y"]
    assert recompute(report) == 0
