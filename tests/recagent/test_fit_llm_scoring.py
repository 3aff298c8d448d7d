"""`recagent fit` asks the LLM only when told to (`--score-llm`), and the product then says
why the LLM does not rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recagent.cli.main import main
from recagent.fit import load_fitted, positive
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.prompts import PromptLibrary
from recagent.types import Interaction, Item
from recagent.wiring import Settings, open_interactions, open_store, product_ranker
from retrieval.interactions import InteractionRow

NO_MODEL = "/nowhere/model.gguf"
"""A model that cannot start: any attempt to use the LLM fails (exit 2)."""


@pytest.fixture
def home(tmp_path: Path, artifact_store: ArtifactStore, mini_items: list[Item]) -> Path:
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    settings = Settings(home=tmp_path)
    open_store(settings).ingest(mini_items)
    ids = [i.id for i in mini_items]
    rows = [InteractionRow(user=f"u{u}", item=ids[(u + n) % len(ids)], rating=5.0, ts=n)
            for u in range(30) for n in range(6)]
    open_interactions(settings).ingest(settings.collection, rows)
    return tmp_path


def test_the_fit_scores_the_llm_only_when_asked(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--users", "10", "--home", str(home), "--model", NO_MODEL]) == 0
    fitted = load_fitted(home, "catalog")
    assert fitted is not None and fitted.llm_model is None and not fitted.uses_llm
    assert "not scored" in capsys.readouterr().out

    assert main(["fit", "--users", "10", "--home", str(home), "--model", NO_MODEL,
                 "--score-llm"]) == 2  # now it needs the model, which cannot start
    assert "nowhere" in capsys.readouterr().err

    _, notes = product_ranker(Settings(home=home), _Client(), PromptLibrary(), fitted, {})
    assert notes and "--score-llm" in notes[0]


class _Client:
    model = "any"

    def complete(self, messages: list[dict[str, str]], **kwargs: object) -> object:
        raise AssertionError("not called: the product's LLM does not rank without a weight")


@pytest.mark.parametrize("rating", [None, 0.0, 1.0, 2.0, 2.5, 3.0, 3.9, 4.0, 5.0, 10.0])
def test_positive_is_the_interaction_rule(rating: float | None) -> None:
    assert positive(rating) == (Interaction(item_id="x", rating=rating).polarity > 0)


def test_a_json_fit_says_no_llm(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--users", "10", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["llm_model"] is None
