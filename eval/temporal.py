"""The global temporal split: one date for everyone, training before it, targets after it.

Leave-one-out (eval.protocols) cuts each user at their own last positive interaction, so
other users' later interactions still train the models. Here nothing at or after the
split date trains anything: the date is the `quantile` of all interaction timestamps; each
user with interactions on both sides is a test case whose target is their first positive
interaction at or after the date (seeded order within one second, eval.protocols.time_order)
of an item they had not interacted with before it, and whose history is everything before
the date. Users without such a target, or without anything before the date, are skipped.
"""

from __future__ import annotations

import math

from eval.datasets import Dataset, Rating
from eval.protocols import (
    LeaveOneOut,
    Split,
    _latest_per_item,
    _user_key,
    is_positive,
    time_order,
)


def split_date(dataset: Dataset, quantile: float) -> int:
    """The timestamp below which `quantile` of the interactions lie (the date itself is on
    the test side)."""
    if not 0 < quantile < 1:
        raise ValueError(f"the split quantile must be in (0, 1), got {quantile}")
    stamps = sorted(r.ts for r in dataset.ratings)
    return stamps[min(len(stamps) - 1, math.floor(quantile * len(stamps)))]


def temporal_split(
    dataset: Dataset, *, threshold: float = 4.0, positive_history: bool = True, seed: int = 0,
    quantile: float = 0.9,
) -> LeaveOneOut:
    """Every interaction before the split date trains; each user's first new positive item
    at or after it is their target."""
    date = split_date(dataset, quantile)
    splits: list[Split] = []
    train: list[Rating] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for user, ratings in sorted(dataset.by_user().items(), key=lambda kv: _user_key(kv[0])):
        ordered = time_order(ratings, seed=seed, user=user)
        before = [r for r in ordered if r.ts < date]
        train.extend(before)
        if not before:
            skip("nothing before the split date")
            continue
        known = {r.item for r in before}
        target = next((r for r in ordered if r.ts >= date and r.item not in known
                       and is_positive(r, threshold)), None)
        if target is None:
            skip("no new positive interaction after the split date")
            continue
        prior = _latest_per_item(before)
        history = [r for r in prior if is_positive(r, threshold)] if positive_history else prior
        if not history:
            skip("empty history")
            continue
        splits.append(Split(user=user, history=tuple(history), target=target.item,
                            seen=frozenset(r.item for r in ordered), prior=tuple(prior)))
    return LeaveOneOut(splits=splits, train=train, skipped=skipped, threshold=threshold)
