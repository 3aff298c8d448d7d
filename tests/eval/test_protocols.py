"""Leave-one-out, LLMRank candidates, pipeline cases, truncation and the rating split,
on tiny hand-made data."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.datasets import Dataset, Rating, load_interactions, load_ml1m, load_ml100k
from eval.protocols import (
    FULL,
    LLMRANK_POSITIVE,
    leave_one_out,
    llmrank_candidates,
    llmrank_cases,
    pipeline_case,
    pipeline_retrieval,
    rating_split,
    retrieval_history,
    sample_users,
    time_order,
    truncate,
    validation_split,
)
from recagent.errors import DataFormatError
from recagent.types import Candidate, Item
from tests.conftest import DATA, needs_data

ITEMS = {str(i): Item(id=str(i), title=f"Movie {i}", text=f"Movie {i}") for i in range(1, 41)}


def r(user: str, item: int, rating: float | None, ts: int) -> Rating:
    return Rating(user=user, item=str(item), rating=rating, ts=ts)


TINY = Dataset(name="tiny", items=ITEMS, ratings=(
    # u1: positives 1, 3, 4; the last positive (4) is the target; 5 comes after it.
    r("u1", 1, 5, 10), r("u1", 2, 3, 20), r("u1", 3, 4, 30), r("u1", 4, 5, 40), r("u1", 5, 2, 50),
    # u2: nothing rated 4 or more: no target.
    r("u2", 1, 3, 10), r("u2", 2, 1, 20),
    # u3: the only positive is the first interaction: empty history.
    r("u3", 6, 5, 10), r("u3", 7, 2, 20),
    # u4: listed out of time order in the file; implicit feedback counts as positive.
    r("u4", 9, 5, 90), r("u4", 8, None, 20),
))


def test_target_is_the_last_positive_and_history_what_came_before() -> None:
    loo = leave_one_out(TINY)
    by_user = {s.user: s for s in loo.splits}
    assert set(by_user) == {"u1", "u4"}
    assert by_user["u1"].target == "4"
    assert [h.item for h in by_user["u1"].history] == ["1", "3"]
    assert by_user["u4"].target == "9" and [h.item for h in by_user["u4"].history] == ["8"]
    assert loo.skipped == {"no positive interaction": 1, "empty history": 1}
    for split in loo.splits:
        assert split.target not in {h.item for h in split.history}
        target_ts = next(x.ts for x in TINY.ratings if (x.user, x.item) == (split.user,
                                                                             split.target))
        assert all(h.ts < target_ts for h in split.history)


def test_all_history_keeps_neutral_and_negative_ratings() -> None:
    split = next(s for s in leave_one_out(TINY, positive_history=False).splits if s.user == "u1")
    assert [h.item for h in split.history] == ["1", "2", "3"]


def test_training_data_never_holds_a_target_or_what_followed_it() -> None:
    loo = leave_one_out(TINY)
    u1 = {x.item for x in loo.train if x.user == "u1"}
    assert u1 == {"1", "2", "3"}
    assert {x.item for x in loo.train if x.user == "u4"} == {"8"}


def test_llmrank_candidates_hold_the_target_once_and_no_seen_item() -> None:
    pool = sorted(ITEMS)
    for split in leave_one_out(TINY).splits:
        cands = llmrank_candidates(split, pool, n_negatives=19, seed=7)
        assert len(cands) == 20 and len(set(cands)) == 20
        assert cands.count(split.target) == 1
        negatives = set(cands) - {split.target}
        assert not negatives & split.seen
        assert not negatives & {h.item for h in split.history}


def test_negative_sampling_is_seeded_per_user() -> None:
    pool = sorted(ITEMS)
    u1 = next(s for s in leave_one_out(TINY).splits if s.user == "u1")
    first = llmrank_candidates(u1, pool, n_negatives=19, seed=7)
    assert llmrank_candidates(u1, pool, n_negatives=19, seed=7) == first
    assert llmrank_candidates(u1, pool, n_negatives=19, seed=8) != first
    # The same user gets the same candidates whoever else is evaluated, in any setting.
    alone = llmrank_cases([u1], pool, setting=FULL, n_negatives=19, max_history=50, seed=7)
    both = llmrank_cases(list(reversed(leave_one_out(TINY).splits)), pool, setting=1,
                         n_negatives=19, max_history=50, seed=7)
    assert alone[0].candidates == next(c for c in both if c.user == "u1").candidates == first


def test_baselines_learn_from_the_same_positives_as_the_targets() -> None:
    loo = leave_one_out(TINY)
    assert {(x.user, x.item) for x in loo.positives} == {("u1", "1"), ("u1", "3"), ("u4", "8")}
    assert all(x.rating is None or x.rating >= 4 for x in loo.positives)
    assert {(x.user, x.item) for x in loo.train} >= {("u1", "2"), ("u2", "1"), ("u2", "2")}


def test_llmrank_conventions_count_every_interaction_as_positive() -> None:
    loo = leave_one_out(TINY, threshold=LLMRANK_POSITIVE)
    by_user = {s.user: s for s in loo.splits}
    # the target is the last interaction whatever its rating (u1 rated 5 with a 2)
    assert by_user["u1"].target == "5" and [h.item for h in by_user["u1"].history] == [
        "1", "2", "3", "4"]
    assert by_user["u2"].target == "2" and by_user["u3"].target == "7"
    assert loo.skipped == {} and loo.positives == loo.train


def test_llmrank_own_negatives_may_be_seen_items_but_never_the_target() -> None:
    u1 = next(s for s in leave_one_out(TINY).splits if s.user == "u1")
    pool = [str(i) for i in range(1, 8)]  # u1 rated 1-5: only 6 and 7 are unseen
    ours = llmrank_candidates(u1, pool, n_negatives=2, seed=3)
    assert set(ours) == {"4", "6", "7"}
    theirs = llmrank_candidates(u1, pool, n_negatives=6, seed=3, exclude_seen=False)
    assert sorted(theirs) == pool and theirs.count("4") == 1
    assert llmrank_candidates(u1, pool, n_negatives=6, seed=3, exclude_seen=False) == theirs
    # the default is unchanged, so stored answers for our convention stay valid
    assert ours == llmrank_candidates(u1, pool, n_negatives=2, seed=3, exclude_seen=True)


def test_too_few_unseen_items_is_an_error() -> None:
    u1 = next(s for s in leave_one_out(TINY).splits if s.user == "u1")
    with pytest.raises(ValueError, match="unseen"):
        llmrank_candidates(u1, ["1", "2", "3", "4", "5", "6"], n_negatives=2, seed=0)


def test_truncation_keeps_the_most_recent() -> None:
    history = tuple(r("u", i, 5, i) for i in range(1, 61))
    assert [h.item for h in truncate(history, 3, 50)] == ["58", "59", "60"]
    assert len(truncate(history, FULL, 50)) == 50
    assert truncate(history, FULL, 50)[0].item == "11"
    assert len(truncate(history[:2], 10, 50)) == 2


class FixedRetriever:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.histories: list[list[str]] = []

    def retrieve(self, history, n=20, *, where=None):
        self.histories.append([i.item_id for i in history.interactions])
        return [Candidate(item=ITEMS[i], rank=k, score=1.0 - k / 10)
                for k, i in enumerate(self.ids[:n])]


def test_pipeline_keeps_a_user_whose_target_was_not_retrieved() -> None:
    u1 = next(s for s in leave_one_out(TINY).splits if s.user == "u1")
    retriever = FixedRetriever(["20", "21", "22"])
    case = pipeline_case(u1, retriever, setting=1, n_candidates=2, max_history=50)
    assert case.candidates == ("20", "21") and case.target == "4"
    assert case.retrieval_scores == (1.0, 0.9)
    assert retriever.histories == [["3"]]  # the truncated history is what retrieval saw


def test_user_sample_is_fixed_by_the_seed() -> None:
    users = [str(i) for i in range(100)]
    sample = sample_users(users, 10, seed=3)
    assert sample == sample_users(users, 10, seed=3) and len(sample) == 10
    assert sample != sample_users(users, 10, seed=4)
    assert sample_users(users, None, seed=3) == users
    assert set(sample_users(users, 5, seed=3)) < set(sample)  # nested: a sample can grow


def test_rating_split_holds_out_the_latest_ratings() -> None:
    split = rating_split(TINY, n_examples=2, n_held_out=2)
    u1 = next(c for c in split.cases if c.user == "u1")
    assert [x.item for x in u1.held_out] == ["4", "5"]
    assert [x.item for x in u1.examples] == ["2", "3"]
    assert not any(x.user == "u1" and x.item in {"4", "5"} for x in split.train)
    # u4 has one explicit rating only: nothing to hold out, so it is not a case
    assert "u4" not in {c.user for c in split.cases}


def test_generic_interactions_file(tmp_path: Path) -> None:
    catalog = tmp_path / "items.csv"
    catalog.write_text("id,title\n7,Seven\n8,Eight\n")
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,timestamp\na,7,5,100\na,08,,200\n")
    ds = load_interactions(log, catalog)
    assert [(x.item, x.rating) for x in ds.ratings] == [("7", 5.0), ("8", None)]
    log.write_text("user,item,rating,timestamp\na,9,5,100\n")
    with pytest.raises(DataFormatError, match="not in the catalog"):
        load_interactions(log, catalog)


@needs_data
def test_movielens_loaders_read_the_shared_data() -> None:
    ml100k = load_ml100k(DATA / "ml-100k")
    assert len(ml100k.ratings) == 100_000 and len(ml100k.by_user()) == 943
    assert not ml100k.partial
    ml1m = load_ml1m(DATA / "ml-1m", DATA / "ml-1m-partial" / "ratings_users_1-2999.dat",
                     partial=True)
    assert len(ml1m.ratings) == 487_650 and len(ml1m.by_user()) == 2999
    assert ml1m.partial and "not comparable" in ml1m.notes[0]


# ---- the tie rule, what retrieval sees, validation cases, fusion weights ------------------

TIED = (
    r("t", 1, 5, 10), r("t", 2, 2, 20),
    # four interactions share the last timestamp; three of them are positive
    r("t", 3, 5, 30), r("t", 4, 4, 30), r("t", 5, 5, 30), r("t", 6, 1, 30),
)


def test_tied_last_positives_the_target_is_seeded_random_among_them() -> None:
    targets = {}
    for seed in range(60):
        loo = leave_one_out(Dataset(name="tied", items=ITEMS, ratings=TIED), seed=seed)
        (split,) = loo.splits
        targets[seed] = split.target
        # the same seed, the same target: on every run, and whatever the file order
        again = leave_one_out(Dataset(name="tied", items=ITEMS,
                                      ratings=tuple(reversed(TIED))), seed=seed)
        assert again.splits == loo.splits and again.train == loo.train
        # the target is the last positive of the seeded order; the cut is just before it
        order = time_order(list(TIED), seed=seed, user="t")
        assert [x.item for x in order][:2] == ["1", "2"]  # earlier timestamps first
        cut = [x.item for x in order].index(split.target)
        assert not any(x.rating is not None and x.rating >= 4 for x in order[cut + 1:])
        assert [x.item for x in split.prior] == [x.item for x in order[:cut]]
        assert split.target not in {x.item for x in split.prior}
        assert {x.item for x in loo.train} == {x.item for x in order[:cut]}
        assert split.seen == frozenset(x.item for x in TIED)
    assert set(targets.values()) == {"3", "4", "5"}  # never 6 (rated 1)
    counts = {t: list(targets.values()).count(t) for t in ("3", "4", "5")}
    assert min(counts.values()) >= 10  # roughly uniform over 60 seeds


def test_the_pipeline_sees_every_prior_interaction_and_never_the_target() -> None:
    u1 = next(s for s in leave_one_out(TINY).splits if s.user == "u1")
    # positive history 1, 3; the retriever also gets 2 (rated 3), with its rating
    assert [x.item for x in u1.history] == ["1", "3"]
    full = retrieval_history(u1, FULL, 50)
    assert [(i.item_id, i.rating, i.polarity) for i in full.interactions] == [
        ("1", 5.0, 1), ("2", 3.0, 0), ("3", 4.0, 1)]
    assert full.seen_ids == {"1", "2", "3"} and u1.target not in full.seen_ids
    # a history cut to its last k items: every interaction since the oldest one kept
    assert [i.item_id for i in retrieval_history(u1, 1, 50).interactions] == ["3"]
    assert [i.item_id for i in retrieval_history(u1, 2, 50).interactions] == ["1", "2", "3"]
    retriever = FixedRetriever(["20", "21", "22"])
    case, rankings = pipeline_retrieval(u1, retriever, setting=FULL, n_candidates=2,
                                        max_history=50)
    assert case.candidates == ("20", "21") and rankings == {"retrieval": ("20", "21", "22")}
    assert retriever.histories == [["1", "2", "3"], ["1", "2", "3"]]
    assert [x.item for x in case.history] == ["1", "3"]  # the LLM's history is unchanged
    # an item after the cut (5, rated 2 after the target) is never part of it
    assert "5" not in {x.item for x in u1.prior} | {x.item for x in u1.history}


def test_validation_cases_come_from_the_training_data_only() -> None:
    ratings = tuple(r(f"v{u}", 1 + (u * 3 + k) % 40, 5 if k % 3 else 2, 10 * k)
                    for u in range(6) for k in range(8))
    loo = leave_one_out(Dataset(name="v", items=ITEMS, ratings=ratings), seed=3)
    val = validation_split(loo, seed=3)
    assert val.splits and set(val.train) <= set(loo.train)
    train = {(x.user, x.item) for x in loo.train}
    tests = {(s.user, s.target) for s in loo.splits}
    for split in val.splits:
        assert (split.user, split.target) in train and (split.user, split.target) not in tests
        assert not any(x.user == split.user and x.item == split.target for x in val.train)
