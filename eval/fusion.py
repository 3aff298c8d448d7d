"""Fusion weights for a variant, fitted on validation users outside the evaluated sample.

The weights are fitted once per history setting on `fit_users` users who are not in the
LLM sample, as a deployment fits on past users and serves new ones: no evaluated user is
ever scored with weights fitted on itself, and every validation user can inform the fit
(a user whose target is not among the candidates scores 0 under every weighting, so only
users whose target was retrieved are drawn). Validation samples are nested: a larger
`fit_users` keeps the users of a smaller one, so a row per size shows how fast quality
rises with the number of validation users.

Cross-fitting (`fit_folds`) lets every user be evaluated: the sample is split into seeded
folds, and each fold is scored with weights fitted on users outside it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from eval.protocols import Case, sample_users


def validation_users(
    cases: Sequence[Case], sample: Collection[str], fit_users: int, seed: int
) -> list[str]:
    """Up to `fit_users` users outside `sample` whose target is among their candidates."""
    pool = [c.user for c in cases if c.user not in sample and c.target in c.candidates]
    return sample_users(pool, fit_users, seed)


def folds(users: Sequence[str], n: int, seed: int) -> list[list[str]]:
    """`users` dealt into n seeded folds of near-equal size, each in the input order."""
    order = list(users)
    random.Random(f"{seed}/folds").shuffle(order)
    fold_of = {u: i % n for i, u in enumerate(order)}
    return [[u for u in users if fold_of[u] == f] for f in range(n)]
