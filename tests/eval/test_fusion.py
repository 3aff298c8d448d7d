"""Validation users and folds for fitting fusion weights (eval/fusion.py)."""

from eval.fusion import folds, validation_users
from eval.protocols import Case


def test_validation_users_are_outside_the_sample_retrieved_and_nested() -> None:
    def case(n: int) -> Case:  # every third user's target was not retrieved
        return Case(user=f"u{n}", setting=0, history=(), target="t",
                    candidates=("x", "y") if n % 3 == 0 else ("x", "t", "y"))

    cases = [case(n) for n in range(30)]
    sample = {f"u{n}" for n in range(10)}
    small = validation_users(cases, sample, 6, seed=3)
    assert len(small) == 6 and not set(small) & sample
    assert all(int(u[1:]) % 3 for u in small)  # only users whose target can be found
    large = validation_users(cases, sample, 9, seed=3)
    assert set(small) <= set(large) and small == validation_users(cases, sample, 6, seed=3)
    assert len(validation_users(cases, sample, 100, seed=3)) == 14  # all that qualify


def test_folds_partition_the_users_evenly_and_by_seed() -> None:
    users = [f"u{n}" for n in range(23)]
    groups = folds(users, 5, seed=3)
    assert sorted(u for g in groups for u in g) == sorted(users)  # each user exactly once
    assert sorted(len(g) for g in groups) == [4, 4, 5, 5, 5]
    assert all(g == sorted(g, key=users.index) for g in groups)  # input order kept
    assert groups == folds(users, 5, seed=3) and groups != folds(users, 5, seed=4)
