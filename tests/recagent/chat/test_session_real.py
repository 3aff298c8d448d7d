"""Chat end to end: MovieLens 100K in an embedded Chroma, the embedded SmolLM2-135M.

The model reads each message and ranks the candidates; whatever it does, the hard
constraints must hold: no Horror after "no horror", never X after "I've seen X",
nothing older after "nothing before 1990". Exact wording is never checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ML100K, ml100k_home

from recagent.chat.session import ChatSession
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.types import ChatTurn, Item, RankedItem
from retrieval.catalog_files import load_movielens
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "recagent.cli"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, artifact_store, embedder) -> Path:  # type: ignore[no-untyped-def]
    return ml100k_home(tmp_path_factory, artifact_store, embedder)


@pytest.fixture(scope="module")
def catalog() -> dict[str, Item]:
    return {i.id: i for i in load_movielens(ML100K)}


@pytest.fixture(scope="module")
def llm(artifact_store) -> Iterator[OpenAIClient]:  # type: ignore[no-untyped-def]
    name, path = resolve_model("smollm2-135m", artifact_store)
    with LocalLLMServer(path, model_name=name) as server:
        yield OpenAIClient(base_url=server.base_url, model=server.model)


@pytest.fixture
def session(home: Path, embedder, llm: OpenAIClient) -> ChatSession:  # type: ignore[no-untyped-def]
    store = CatalogStore.open(embedder, path=home / "chroma")
    ranker = ListwiseRanker(llm, PromptLibrary())
    recommender = Recommender(store, SemanticRetriever(store), ranker)
    return ChatSession(recommender, llm, PromptLibrary(), k=5)


def valid(turn: ChatTurn, catalog: dict[str, Item]) -> None:
    """What holds for any model: catalog items, no repeats, none named, explained."""
    got = [i.item_id for i in turn.items]
    assert len(got) == 5 and len(set(got)) == 5
    assert set(got) <= set(catalog)
    assert not set(got) & turn.profile.excluded_ids
    assert all(i.explanation.strip() for i in turn.items)


def speakable(item: RankedItem) -> str | None:
    """'Fan, The (1996)' → 'The Fan', when a title can be said plainly in a sentence."""
    title = re.sub(r"\s*\(\d{4}\)$", "", item.title)
    title = re.sub(r"^(.*), (The|A|An)$", r"\2 \1", title)
    if re.fullmatch(r"[A-Za-z0-9' ]+", title) and not re.search(
            r"\b(?:and|or|but|so|since|if|though)\b", title, re.IGNORECASE):
        return title
    return None


def test_three_turns_keep_the_hard_constraints(session: ChatSession,
                                               catalog: dict[str, Item]) -> None:
    t1 = session.send("I loved Alien and Heat, something tense but no horror")
    assert {"183", "273"} <= {m.item_id for m in t1.matched}  # Alien (1979), Heat (1995)
    assert t1.profile.exclude_genres == ["Horror"]
    valid(t1, catalog)
    assert not any(catalog[i.item_id].metadata["genre_Horror"] for i in t1.items)

    x = next((i for i in t1.items if speakable(i)), t1.items[0])
    said = speakable(x) or "the first one"
    t2 = session.send(f"I've seen {said}")
    assert x.item_id in {r.item_id for r in t2.profile.seen}, (said, t2.matched)
    valid(t2, catalog)
    assert x.item_id not in [i.item_id for i in t2.items]
    assert not any(catalog[i.item_id].metadata["genre_Horror"] for i in t2.items)

    # save and restore between turns: the conversation goes on where it stopped
    session = ChatSession.from_json(session.to_json(), session.recommender, session.client,
                                    session.prompts)
    t3 = session.send("nothing before 1990")
    assert t3.profile.year_min == 1990
    valid(t3, catalog)
    for item in t3.items:
        meta = catalog[item.item_id].metadata
        assert isinstance(meta["year"], int) and meta["year"] >= 1990, item
        assert not meta["genre_Horror"] and item.item_id != x.item_id
    trace = t3.trace
    assert trace is not None
    # the turn asked the real model: it answered, or (on a loaded machine) a step ran out of
    # its deadline and the turn says which, never silently
    if trace.degradations:
        assert all(d.reason == "deadline" for d in trace.degradations), trace.degradations
    else:
        assert trace.model == "smollm2-135m"


def run_cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECAGENT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=900,
                          input=stdin)


def test_cli_script_json(home: Path, tmp_path: Path, catalog: dict[str, Item]) -> None:
    script = tmp_path / "talk.txt"
    script.write_text("# a comment line\nI loved Star Wars, no horror\n\n"
                      "I've seen the first one. Nothing before 1985\n", encoding="utf-8")
    saved = tmp_path / "session.json"
    done = run_cli(home, "chat", "--script", str(script), "--json", "--k", "4", "--no-llm",
                   "--session", str(saved))
    assert done.returncode == 0, done.stderr
    turns = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(turns) == 2
    assert {"reply", "items", "profile", "matched", "notes", "degraded"} <= set(turns[0])
    top = turns[0]["items"][0]["item_id"]
    for turn in turns:
        assert len(turn["items"]) == 4 and turn["reply"]
        for item in turn["items"]:
            meta = catalog[item["item_id"]].metadata
            assert not meta["genre_Horror"] and item["item_id"] != "50"
    assert top not in [i["item_id"] for i in turns[1]["items"]]
    assert all(catalog[i["item_id"]].metadata["year"] >= 1985 for i in turns[1]["items"])
    assert json.loads(saved.read_text(encoding="utf-8"))["turns"] == 2
    done = run_cli(home, "chat", "--script", str(script), "--json", "--no-llm",
                   "--session", str(saved))  # resumes where the first run stopped
    resumed = json.loads(done.stdout.splitlines()[0])
    assert top in [r["item_id"] for r in resumed["profile"]["seen"]]
    assert json.loads(saved.read_text(encoding="utf-8"))["turns"] == 4


def test_cli_chat_with_the_embedded_model(home: Path, tmp_path: Path,
                                          catalog: dict[str, Item]) -> None:
    script = tmp_path / "one.txt"
    script.write_text("I loved Toy Story, nothing before 1990\n", encoding="utf-8")
    done = run_cli(home, "chat", "--script", str(script), "--json", "--k", "3",
                   "--candidates", "8", "--model", "smollm2-135m")
    assert done.returncode == 0, done.stderr
    (turn,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(turn["items"]) == 3 and turn["profile"]["year_min"] == 1990
    assert all(catalog[i["item_id"]].metadata["year"] >= 1990 for i in turn["items"])
    assert "1" not in [i["item_id"] for i in turn["items"]]


def test_cli_interactive_and_errors(home: Path, tmp_path: Path) -> None:
    done = run_cli(home, "chat", "--no-llm", stdin="I loved Fargo\nno crime please\n\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Here are 5 picks") == 2 and "\n 1. " in done.stdout
    long_line = "x" * 2500
    done = run_cli(home, "chat", "--no-llm", stdin=f"{long_line}\nI loved Fargo\n")
    assert done.returncode == 0 and "limit is 2000" in done.stderr  # the REPL goes on
    assert "Here are 5 picks" in done.stdout
    script = tmp_path / "long.txt"
    script.write_text(long_line + "\n", encoding="utf-8")
    done = run_cli(home, "chat", "--no-llm", "--script", str(script))
    assert done.returncode == 2 and "limit is 2000" in done.stderr
    done = run_cli(home, "chat", "--no-llm", "--script", str(tmp_path / "missing.txt"))
    assert done.returncode == 2 and "missing.txt" in done.stderr
