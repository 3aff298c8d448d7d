"""Rating prediction on a hand-made log: baselines, the LLM rater, RMSE/MAE by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eval.config import EvalConfig
from eval.datasets import Dataset, Rating
from eval.protocols import rating_split
from eval.rating import ItemMean, UserMean, evaluate_rating, write_rating_report
from recagent.types import Item
from tests.fakes import ScriptedClient

ITEMS = {i: Item(id=i, title=f"Film {i}", text=f"Film {i}.") for i in "abxy"}
LOG = Dataset(name="tiny", items=ITEMS, ratings=tuple(
    Rating(user=u, item=i, rating=float(x), ts=t) for u, i, x, t in [
        ("u", "a", 5, 1), ("u", "b", 3, 2), ("u", "x", 5, 3), ("u", "y", 1, 4),
        ("v", "x", 4, 1), ("v", "a", 2, 2), ("w", "x", 2, 1), ("w", "b", 4, 2)]))
CONFIG = EvalConfig.model_validate({
    "name": "tiny-rating", "dataset": {"kind": "ml-100k", "path": "unused"},
    "protocol": {"kind": "rating", "n_examples": 2, "n_held_out": 2},
    "users": {"llm_sample": 1}, "variants": [{"name": "rate", "template": "rate"}],
})


def answer(**ratings: int) -> str:
    return json.dumps({"ratings": [{"id": k, "rating": v} for k, v in ratings.items()]})


def test_baselines_by_hand() -> None:
    split = rating_split(LOG, n_examples=2, n_held_out=2)
    (case,) = split.cases  # v and w have only two ratings: nothing is left to show
    assert UserMean().predict(case) == {"x": 4.0, "y": 4.0}
    # x: (4 + 2) / 2 = 3 from v and w; y unrated: global mean of 5,3,4,2,2,4 = 10/3
    assert ItemMean(split.train).predict(case) == pytest.approx({"x": 3.0, "y": 10 / 3})


def test_llm_rater_scores_and_caches(tmp_path: Path) -> None:
    client = ScriptedClient(answer(A=5, B=2))
    summary = evaluate_rating(CONFIG, LOG, client, out=tmp_path, progress=False)
    rows = summary["populations"]["llm_sample"]["rows"]
    # errors 0 and 1 → RMSE √(1/2), MAE 1/2; user mean: errors 1 and 3 → √5, 2
    assert rows["rate"]["rmse"] == pytest.approx(math.sqrt(0.5))
    assert rows["rate"]["mae"] == pytest.approx(0.5)
    assert rows["user_mean"]["rmse"] == pytest.approx(math.sqrt(5))
    assert rows["user_mean"]["mae"] == pytest.approx(2.0)
    prompt = client.requests[0]["messages"][-1]["content"]
    assert "Film a.: 5/5" in prompt and "[B] Film y." in prompt
    again = ScriptedClient()
    evaluate_rating(CONFIG, LOG, again, out=tmp_path, progress=False)
    assert again.requests == []
    paths = write_rating_report(summary, tmp_path / "report", "x = 1\n")
    assert "| rate | 1 | 0.7071 | 0.5000 | 0 |" in paths[2].read_text()
    assert summary["llm_model"] == "scripted" and "LLM: **scripted**" in paths[2].read_text()


def test_an_incomplete_answer_is_a_counted_failure_at_the_midpoint(tmp_path: Path) -> None:
    summary = evaluate_rating(CONFIG, LOG, ScriptedClient(answer(A=5)), out=tmp_path,
                              progress=False)
    row = summary["populations"]["llm_sample"]["rows"]["rate"]
    # x rated 5 (error 0); y not rated → midpoint 3 (error 2): RMSE √2, MAE 1
    assert row["failed"] == 1 and row["rmse"] == pytest.approx(math.sqrt(2))
    assert row["mae"] == pytest.approx(1.0)
