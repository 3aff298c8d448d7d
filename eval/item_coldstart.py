"""Item cold start: users whose next item is one that nobody had interacted with before.

Collaborative filtering cannot rank an item without interactions; text and an LLM's
knowledge of the item can. This protocol measures exactly that regime (issue 19, part 2):

* **Cold items.** Items are ordered by the time of their first interaction; the cut is the
  first-interaction time of the ceil(`cold_share` x n)-th newest, and every item first
  interacted with at or after it is cold (items first seen in the same second are never
  split). On ML-100K at 10%: 169 of 1682 items.
* **Training.** Leave-one-out's own training interactions (eval.protocols.leave_one_out:
  the same time order, seeded tie rule and cut) minus every interaction with a cold item:
  no collaborative model, popularity count or map is fitted on one.
* **Test users.** Those whose leave-one-out target (last positive, seeded tie rule) is a
  cold item; their history is leave-one-out's, unchanged. Cold items they met before
  the cut stay in it: rankers that read text use them; ALS-based ones skip them or, for the
  mapped rankers, use their mapped vector.
* **Candidates.** The target plus `n_negatives` cold items the user never interacted with,
  drawn uniformly and seeded per user (eval.protocols.llmrank_candidates with the cold
  items as the pool), shuffled. Every candidate is cold, so the question is the one a
  new-item shelf asks: which of the new items will this user take? The pipeline variant
  (candidates retrieved from the whole catalog) would mostly measure whether retrieval
  lets a cold item in at all, where collaborative sources, which rank warm items first,
  decide; with cold candidates only, every ranker is judged on the same cold items.
  A user with fewer unseen cold items than `n_negatives` is skipped and counted.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from eval.datasets import Dataset
from eval.protocols import LeaveOneOut

SKIP_WARM_TARGET = "target is not a cold item"
SKIP_FEW_COLD = "too few unseen cold items for the negatives"


@dataclass(frozen=True)
class ColdItems:
    """The held-out items and where the time cut fell."""

    items: frozenset[str]
    cut_ts: int
    """First-interaction time of the oldest cold item."""
    pool: tuple[str, ...]
    """The cold items in the data set's natural id order: where negatives are drawn."""
    share: float
    catalog: int
    """Items with any interaction: what `share` is a share of."""


def cold_items(dataset: Dataset, share: float) -> ColdItems:
    """The items first interacted with at or after the time that leaves the newest
    ceil(share x n) items on the cold side."""
    if not 0 < share < 1:
        raise ValueError(f"cold_share must be in (0, 1), got {share}")
    first: dict[str, int] = {}
    for r in dataset.ratings:
        first[r.item] = min(first.get(r.item, r.ts), r.ts)
    if not first:
        raise ValueError("the data set has no interactions")
    times = sorted(first.values())
    cut = times[len(times) - math.ceil(share * len(times))]
    cold = frozenset(i for i, ts in first.items() if ts >= cut)
    pool = tuple(i for i in dataset.rated_items() if i in cold)
    return ColdItems(items=cold, cut_ts=cut, pool=pool, share=share, catalog=len(first))


def cold_split(loo: LeaveOneOut, cold: ColdItems, *, n_negatives: int) -> LeaveOneOut:
    """Leave-one-out restricted to cold targets, trained on warm interactions only."""
    skipped = dict(loo.skipped)
    splits = []
    for s in loo.splits:
        if s.target not in cold.items:
            skipped[SKIP_WARM_TARGET] = skipped.get(SKIP_WARM_TARGET, 0) + 1
        elif len(cold.items - s.seen) < n_negatives:
            skipped[SKIP_FEW_COLD] = skipped.get(SKIP_FEW_COLD, 0) + 1
        else:
            splits.append(s)
    train = [r for r in loo.train if r.item not in cold.items]
    return dataclasses.replace(loo, splits=splits, train=train, skipped=skipped)
