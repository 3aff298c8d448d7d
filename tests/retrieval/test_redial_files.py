"""The ReDial folder: the real catalog and histories, and broken copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA

from recagent.cli.main import main
from recagent.errors import ConfigError, DataFormatError
from recagent.llm.backends.artifacts import ArtifactStore
from retrieval.attributes import AttributeFilter, filter_ids, values
from retrieval.interactions import InteractionStore
from retrieval.redial_files import load_redial_catalog, load_redial_interactions

REDIAL = DATA / "redial"
needs_redial = pytest.mark.skipif(not (REDIAL / "id2info.json").is_file(),
                                  reason=f"ReDial data not found under {REDIAL}")


@needs_redial
def test_the_real_catalog_and_histories() -> None:
    items = load_redial_catalog(REDIAL)
    assert len(items) == 6583
    by_id = {i.id: i for i in items}
    bttf = by_id["100043"]
    assert values(bttf, "director") == ("Robert Zemeckis",)
    assert values(bttf, "genres") == ("Adventure", "Comedy", "Sci-Fi")
    assert "DeLorean" in bttf.text and "Michael J. Fox" in bttf.text
    zemeckis = filter_ids(by_id, AttributeFilter(any_of={"director": ["robert zemeckis"]}))
    assert "100043" in zemeckis and all(
        "Robert Zemeckis" in values(by_id[i], "director") for i in zemeckis)
    rows = load_redial_interactions(REDIAL, known=set(by_id))
    assert {r.item for r in rows} <= set(by_id)
    users = {r.user for r in rows}
    assert 900 <= len(users) <= 1000
    # the first dialogue: the seeker liked The Babadook, mentioned first, then the rest
    first = [r for r in rows if r.user == "redial-16162"]
    assert first[0].item == "135508" and first[0].liked is True
    assert [r.ts for r in first] == list(range(1, len(first) + 1))


def test_missing_and_broken_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"id2info\.json is missing"):
        load_redial_catalog(tmp_path)
    (tmp_path / "id2info.json").write_text(json.dumps({"1": {"name": "X (1990)", "star": "A"}}))
    with pytest.raises(DataFormatError, match="movie '1': 'star' must be a list"):
        load_redial_catalog(tmp_path)
    (tmp_path / "valid_data.jsonl").write_text('{"conversationId": "1"}\n{oops\n')
    with pytest.raises(DataFormatError, match="invalid JSON") as e:
        load_redial_interactions(tmp_path)
    assert e.value.line == 2


def test_ingest_redial_stores_the_catalog_and_seeker_histories(
    tmp_path: Path, artifact_store: ArtifactStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recagent ingest --redial` on a three-movie copy of the folder's form."""
    folder, home = tmp_path / "redial", tmp_path / "home"
    folder.mkdir()
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    movies = {
        "1": {"name": "Alien (1979)", "genre": ["horror", "sci-fi"], "plot": "In space.",
              "director": ["Ridley Scott"], "writer": [], "star": ["Sigourney Weaver"]},
        "2": {"name": "Heat (1995)", "genre": ["crime"], "plot": "Cops and robbers.",
              "director": ["Michael Mann"], "writer": [], "star": ["Al Pacino"]},
        "3": {"name": "Up", "genre": [], "plot": "", "director": [], "writer": [], "star": []},
    }
    (folder / "id2info.json").write_text(json.dumps(movies))
    dialogue = {"conversationId": "7", "movieMentions": {"1": "Alien", "2": "Heat", "9": "X"},
                "initiatorQuestions": {"1": {"liked": 1}, "2": {"liked": 0}, "9": {"liked": 1}},
                "respondentQuestions": {},
                "messages": [{"text": "I loved @2"}, {"text": "try @1 or @9"}]}
    (folder / "valid_data.jsonl").write_text(json.dumps(dialogue) + "\n")
    assert main(["ingest", "--redial", str(folder), "--home", str(home), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == 3 and out["interactions"]["stored"] == 2
    db = InteractionStore(home / "interactions.sqlite")
    history = db.history("catalog", "redial-7")
    assert [(i.item_id, i.liked) for i in history.chronological()] == [("2", False), ("1", True)]
