"""Fusion weights for a variant, fitted on validation users and cross-fitted.

The evaluated users are split into folds; the weights used for a user are fitted on
`fit_users` users of the other folds, so no user is ever scored with weights fitted on
itself, and every user of the sample still gets a fused ranking (the report compares the
same users as for every other run). Validation samples are nested: a larger `fit_users`
keeps the users of a smaller one, so a row per size shows how fast quality rises.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from eval.protocols import Case, sample_users
from recagent.ensemble import fit_weights

FOLDS = 5
Scores = Mapping[str, Mapping[str, float]]
"""Source name → candidate id → score, for one user."""


def fold_of(users: Sequence[str], seed: int, folds: int = FOLDS) -> dict[str, int]:
    order = list(users)
    random.Random(f"{seed}/folds").shuffle(order)
    return {u: n % folds for n, u in enumerate(order)}


def validation_sets(
    users: Sequence[str], fit_users: int, seed: int, folds: int = FOLDS,
    eligible: set[str] | None = None,
) -> tuple[dict[str, int], list[list[str]]]:
    """Each user's fold, and per fold the users its weights are fitted on: never of its
    own fold, and only `eligible` ones (a user whose target is not a candidate cannot
    tell one weighting from another)."""
    fold = fold_of(users, seed, folds)
    pool = [u for u in users if eligible is None or u in eligible]
    return fold, [sample_users([u for u in pool if fold[u] != f], fit_users, seed)
                  for f in range(folds)]


def cross_fit(
    cases: Sequence[Case], sources: Mapping[str, Scores], names: Sequence[str], *,
    fit_users: int, seed: int, folds: int = FOLDS,
) -> tuple[dict[str, dict[str, float]], list[dict[str, float]]]:
    """Weights per user (fitted on other folds' validation users), and each fold's weights."""
    by_user = {c.user: c for c in cases}
    eligible = {c.user for c in cases if c.target in c.candidates}
    fold, validation_per_fold = validation_sets(list(by_user), fit_users, seed, folds, eligible)
    per_user: dict[str, dict[str, float]] = {}
    per_fold: list[dict[str, float]] = []
    for f, validation in enumerate(validation_per_fold):
        examples = [(sources[u], by_user[u].candidates, by_user[u].target) for u in validation]
        weights = fit_weights(examples, names)[0] if examples else {names[0]: 1.0}
        per_fold.append(weights)
        per_user.update({u: weights for u in by_user if fold[u] == f})
    return per_user, per_fold
