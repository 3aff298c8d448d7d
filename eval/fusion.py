"""Fusion weights for a variant, fitted on users outside the evaluated sample.

The weights are fitted once per history setting on users who are not in the LLM sample, as
a deployment fits on past users and serves new ones: no evaluated user is ever scored with
weights fitted on itself. Only users whose target is among their candidates are used (any
other scores 0 under every weighting). The weights among the collaborative sources are
fitted on all of them (the pool: their scores cost nothing); the LLM's share on
`fit_users` of them, whose LLM scores cost a call each (`recagent.ensemble.fit_llm_share`).
Validation samples are nested: a larger `fit_users` keeps the users of a smaller one, so a
row per size shows how fast quality rises with the number of LLM-scored users.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from eval.protocols import Case, sample_users


def pool_cases(cases: Sequence[Case], sample: Collection[str]) -> list[Case]:
    """The cases of users outside `sample` whose target is among their candidates."""
    return [c for c in cases if c.user not in sample and c.target in c.candidates]


def validation_users(
    cases: Sequence[Case], sample: Collection[str], fit_users: int, seed: int
) -> list[str]:
    """Up to `fit_users` users of the pool (`pool_cases`), drawn at random."""
    return sample_users([c.user for c in pool_cases(cases, sample)], fit_users, seed)
