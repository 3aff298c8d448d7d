"""RecBole's SASRec and GRU4Rec as baselines, trained on tiny hand-made sequences."""

from __future__ import annotations

import pytest

from eval.datasets import Rating
from eval.protocols import Case
from eval.sequence_baselines import SequentialScorer, catalog_top
from eval.sequential_models import SequentialModel, SequentialSettings, sequences_of

ITEMS = [f"i{n}" for n in range(8)]
"""Every user walks the same cycle i0 -> i1 -> ... -> i7 -> i0, from its own start."""
TRAIN = [Rating(user=f"u{u}", item=ITEMS[(u + t) % 8], rating=4.0, ts=t)
         for u in range(24) for t in range(12)]
SETTINGS = SequentialSettings(max_epochs=25, patience=25, batch_size=16, learning_rate=0.01,
                              max_length=8, seed=7)


def test_sequences_keep_the_given_order_and_a_rerated_item_at_its_latest_place() -> None:
    rows = [Rating("u", "a", 4.0, 1), Rating("u", "b", 4.0, 2), Rating("u", "a", 2.0, 3)]
    assert sequences_of(rows) == {"u": ["b", "a"]}


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_trains_deterministically_and_learns_what_comes_next(model: str) -> None:
    first = SequentialModel(model, TRAIN, SETTINGS)  # type: ignore[arg-type]
    again = SequentialModel(model, TRAIN, SETTINGS)  # type: ignore[arg-type]
    history = ["i2", "i3", "i4"]
    scores = first.scores(history)
    assert scores == again.scores(history)  # same seed, same rows: the same model
    unseen = {i: s for i, s in scores.items() if i not in history}
    assert max(unseen, key=lambda i: unseen[i]) == "i5"
    log = first.log
    assert log.epochs <= SETTINGS.max_epochs and 1 <= log.best_epoch <= log.epochs
    assert log.validation_users == 24 and log.best_validation_ndcg10 > 0.5
    assert log.seconds > 0


def test_the_scorer_ranks_candidates_and_its_own_top_excludes_what_the_user_saw(
        tmp_path: object) -> None:
    from pathlib import Path

    cache = Path(str(tmp_path))
    scorer = SequentialScorer("sasrec", TRAIN, SETTINGS, cache=cache)
    history = tuple(Rating("new", i, 4.0, n) for n, i in enumerate(["i2", "i3", "i4"]))
    case = Case(user="new", setting=0, history=history, target="i5",
                candidates=("i0", "i5", "unknown"), prior=history)
    scores = scorer.score(case)
    assert scores["i5"] > scores["i0"]
    assert scores["unknown"] < min(scores["i0"], scores["i5"])  # never trained on: last
    top = catalog_top(scorer, case, 3)
    assert top[0] == "i5" and not set(top) & {"i2", "i3", "i4"}
    loaded = SequentialScorer("sasrec", TRAIN, SETTINGS, cache=cache)  # same rows: no training
    assert loaded.trained.cached and loaded.score(case) == scores
