"""One meaning of "positive" in a run, and the `conventions` option of the LLMRank protocol:
the config rules, what the harness builds from them, and what the report's notes say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eval.config import EvalConfig
from eval.datasets import Dataset, Rating
from eval.harness import Harness
from eval.protocols import LLMRANK_POSITIVE, PROTOCOL_VERSION
from eval.summary import summarize
from tests.eval.conftest import REPORT_ITEMS

# Every user rates item 40 with a 1 first; then four items they like and one they do not.
RATINGS = tuple(
    Rating(user=f"u{u}", item=item, rating=rating, ts=10 * u + k)
    for u in range(6)
    for k, (item, rating) in enumerate([("40", 1.0), (str(1 + u), 5.0), (str(7 + u), 4.0),
                                        (str(13 + u), 2.0), (str(19 + u), 5.0),
                                        (str(25 + u), 3.0)])
)
DATASET = Dataset(name="conventions", ratings=RATINGS, items=REPORT_ITEMS)


def config(conventions: str = "ours", **dataset: Any) -> EvalConfig:
    return EvalConfig.model_validate({
        "name": "c", "seed": 1, "dataset": {"kind": "ml-100k", "path": "unused", **dataset},
        "protocol": {"kind": "llmrank", "n_negatives": 4, "k": 3, "conventions": conventions},
        "baselines": {"include": ["random", "popularity"]}})


def run(cfg: EvalConfig, store, tmp_path: Path):
    harness = Harness(cfg, dataset=DATASET, store=store, out=tmp_path, progress=False)
    result = harness.run(None)
    return harness, result


def test_the_conventions_option_is_checked() -> None:
    assert PROTOCOL_VERSION == 3
    assert config().positive_threshold == 4.0
    assert config("llmrank").positive_threshold == LLMRANK_POSITIVE
    with pytest.raises(ValueError, match=r"counts every interaction.*positive_threshold"):
        config("llmrank", positive_threshold=4.0)
    with pytest.raises(ValueError, match=r"remove \['history'\]"):
        config("llmrank", history="all")
    with pytest.raises(ValueError, match="llmrank protocol only"):
        EvalConfig.model_validate({
            "name": "c", "dataset": {"kind": "ml-100k", "path": "unused"},
            "protocol": {"kind": "pipeline", "conventions": "llmrank"}})
    with pytest.raises(ValueError, match="Input should be 'ours' or 'llmrank'"):
        config("paper")


def test_our_baselines_learn_only_from_positive_training_interactions(
    report_store, tmp_path
) -> None:
    harness, result = run(config(), report_store, tmp_path)
    counts = harness.scorers["popularity"].scorer.counts  # type: ignore[attr-defined]
    assert counts["40"] == 0  # six ratings of 1: not positive, not learnt
    assert counts[str(7)] == 1 and str(13) not in counts
    for case in result.cases[0]:
        assert case.target == str(19 + int(case.user[1:]))  # the last rating >= 4
        assert not set(case.candidates) - {case.target} & {"40", *(r.item for r in case.history)}
    note = " ".join(summarize(result)["notes"])
    assert "Our conventions, not LLMRank's: the target is the last interaction rated >= 4" in note


def test_llmrank_conventions_change_the_target_the_training_data_and_the_negatives(
    report_store, tmp_path
) -> None:
    harness, result = run(config("llmrank"), report_store, tmp_path)
    counts = harness.scorers["popularity"].scorer.counts  # type: ignore[attr-defined]
    assert counts["40"] == 6  # every interaction is positive, so every one is learnt
    seen_negatives = 0
    for case in result.cases[0]:
        u = int(case.user[1:])
        assert case.target == str(25 + u)  # the last interaction, though rated 3
        assert [r.item for r in case.history] == ["40", str(1 + u), str(7 + u), str(13 + u),
                                                  str(19 + u)]
        assert case.candidates.count(case.target) == 1
        seen_negatives += len(set(case.candidates) & {r.item for r in case.history})
    summary = summarize(result)
    note = " ".join(summary["notes"])
    assert "LLMRank's own conventions: every interaction is positive" in note
    assert f"{seen_negatives / len(result.cases[0]):.2f} per user are in the history" in note
    assert "every user is evaluated (LLMRank: 200 random users)" in note
