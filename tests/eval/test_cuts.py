"""The strict time cut and the global temporal split, on hand-made timestamps."""

from __future__ import annotations

import pytest

from eval.datasets import Dataset, Rating
from eval.protocols import leave_one_out
from eval.temporal import split_date, temporal_split
from recagent.types import Item

ITEMS = {str(i): Item(id=str(i), title=f"Movie {i}", text=f"Movie {i}") for i in range(1, 20)}


def r(user: str, item: int, rating: float, ts: int) -> Rating:
    return Rating(user=user, item=str(item), rating=rating, ts=ts)


# u1 logs 3, 4 and 5 in second 30, and a low rating of 6 after: whichever of 3 and 5 (both
# positive) the seeded tie order puts last is the target; the other, and 4, share its second.
SAME_SECOND = Dataset(name="ties", items=ITEMS, ratings=(
    r("u1", 1, 5, 10), r("u1", 2, 2, 20), r("u1", 3, 5, 30), r("u1", 4, 3, 30),
    r("u1", 5, 4, 30), r("u1", 6, 2, 40),
    r("u2", 1, 4, 5), r("u2", 3, 4, 15), r("u2", 7, 5, 25),
))


@pytest.mark.parametrize("seed", range(6))
def test_the_strict_cut_keeps_nothing_at_or_after_the_targets_second(seed: int) -> None:
    loose = leave_one_out(SAME_SECOND, seed=seed, positive_history=False)
    strict = leave_one_out(SAME_SECOND, seed=seed, positive_history=False, strict=True)
    assert [(s.user, s.target) for s in strict.splits] == [(s.user, s.target)
                                                             for s in loose.splits]
    for split in strict.splits:
        target_ts = next(x.ts for x in SAME_SECOND.ratings
                         if (x.user, x.item) == (split.user, split.target))
        assert all(h.ts < target_ts for h in (*split.history, *split.prior))
        assert all(t.ts < target_ts for t in strict.train if t.user == split.user)
    u1 = next(s for s in strict.splits if s.user == "u1")
    assert u1.target in {"3", "5"}
    assert [h.item for h in u1.prior] == ["1", "2"]
    assert {t.item for t in strict.train if t.user == "u1"} == {"1", "2"}


def test_the_leave_one_out_cut_lets_the_targets_second_into_the_history() -> None:
    """What the strict cut removes: items the tie order put before the target."""
    priors = [next(s for s in leave_one_out(SAME_SECOND, seed=seed, positive_history=False)
                   .splits if s.user == "u1").prior for seed in range(6)]
    assert all(any(h.ts == 30 for h in prior) for prior in priors)  # the other of 3, 5


def test_global_split_trains_on_everything_before_one_date() -> None:
    data = Dataset(name="dated", items=ITEMS, ratings=(
        r("a", 1, 5, 1), r("a", 2, 4, 2), r("a", 3, 5, 8), r("a", 4, 5, 9),
        r("b", 1, 4, 3), r("b", 5, 2, 9), r("b", 6, 4, 10),
        r("c", 7, 5, 8), r("c", 8, 5, 9),     # nothing before the date: skipped
        r("d", 1, 5, 4), r("d", 2, 2, 8),     # nothing positive after it: skipped
    ))
    assert split_date(data, 0.5) == 8
    split = temporal_split(data, quantile=0.5)
    date = 8
    assert all(t.ts < date for t in split.train)
    assert {(t.user, t.item) for t in split.train} == {("a", "1"), ("a", "2"), ("b", "1"),
                                                      ("d", "1")}
    targets = {s.user: s.target for s in split.splits}
    assert targets == {"a": "3", "b": "6"}  # the first new positive at or after the date
    assert split.skipped == {"nothing before the split date": 1,
                             "no new positive interaction after the split date": 1}
    with pytest.raises(ValueError, match="quantile"):
        split_date(data, 1.0)
