"""A variant's few-shot demonstrations, drawn from donors outside the LLM sample.

The ranker itself is built by the product's wiring (recagent.wiring.build_ranker) from the
variant, which is a RankerSpec: nothing here knows a particular variant.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from eval.config import VariantConfig
from eval.protocols import Split, llmrank_candidates, sample_users
from recagent.rank.demonstrations import DemonstrationSelector, DemonstrationSource
from recagent.types import Demonstration, Item

PROFILE_ITEMS = 50
"""A donor's most recent items that similarity is computed on (the protocol's full history)."""


def donor_demonstration(
    split: Split, items: dict[str, Item], pool: Sequence[str], *, seed: int,
    n_history: int = 5, n_candidates: int = 5,
) -> Demonstration:
    """One worked example from one donor: its recent history, a few candidates, and the item
    it actually chose next. `split.history` holds only what came before the donor's own
    target, so nothing the donor did later is shown or matched."""
    candidates = llmrank_candidates(split, pool, n_negatives=n_candidates - 1, seed=seed)
    shown = [items[r.item].title for r in split.history[-n_history:]]
    return Demonstration(
        history_titles=shown,
        candidate_titles=[items[c].title for c in candidates],
        chosen_title=items[split.target].title,
        reason=f"Fits the taste shown by {shown[-1]}.",
        user_id=split.user,
        history_ids=[r.item for r in split.history[-PROFILE_ITEMS:]],
        chosen_id=split.target,
    )


def demonstration_pool(
    splits: Sequence[Split], items: dict[str, Item], pool: Sequence[str], *, k: int,
    exclude: set[str], seed: int,
) -> list[Demonstration]:
    """Every donor outside `exclude` (the LLM sample), in a seeded order whose first k are
    the k seeded donors fixed ("random") demonstrations have always used; the rest follow
    in a seeded shuffle, to replace a donor that would leak or to break similarity ties."""
    donors = [s for s in splits if s.user not in exclude]
    first = set(sample_users([s.user for s in donors], k, seed + 1))
    rest = [s for s in donors if s.user not in first]
    random.Random(f"{seed}/demonstrations").shuffle(rest)
    ordered = [s for s in donors if s.user in first] + rest
    return [donor_demonstration(s, items, pool, seed=seed) for s in ordered]


def demonstrations(
    variant: VariantConfig, splits: Sequence[Split], items: dict[str, Item],
    pool: Sequence[str], *, exclude: set[str], seed: int,
) -> Sequence[Demonstration] | DemonstrationSource:
    """A variant's demonstrations: none, or a selector the ranker asks per user (random:
    the same donors for everyone; similar: the donors closest to this history)."""
    if variant.few_shot == 0:
        return []
    donors = demonstration_pool(splits, items, pool, k=variant.few_shot, exclude=exclude,
                                seed=seed)
    return DemonstrationSelector(donors, variant.few_shot, similar=variant.demos == "similar",
                                 budget_tokens=variant.demo_budget, exclude_users=exclude)

