"""Few-shot demonstrations picked per request: similar donors first, within a token budget.

A demonstration is another user's recent history and the item they really chose next
(`Demonstration`). The selector ranks a pool of them against the current history and
keeps the best k that fit a token budget. It never returns one that could give the
answer away: not the user's own, and not one whose chosen item is in the current
history or among the current candidates (where the target is, when there is one).

Similarity is Jaccard over item ids: no model call and no vectors per request (cheap on
a CPU that is busy decoding), deterministic, and it is the collaborative signal a donor
adds. Item content is already in the prompt through the candidates' texts, so embeddings
would mostly repeat it. Demonstrations without ids are compared by titles instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Protocol, runtime_checkable

from recagent.types import Candidate, Demonstration, Interaction, Item

TITLE_CHARS = 165
"""The longest title the prompt shows whole (`truncate(160)` has a leeway of 5)."""
DEMO_OVERHEAD_CHARS = 360
"""The fixed text one demonstration adds besides its titles and reason: the task
instruction of prompts/_rank_task.j2 and the answer's JSON (measured 341, rounded up;
tests/test_demonstrations.py checks the estimate against real renders)."""
CHARS_PER_TOKEN = 4
"""A rough rule for English text with BPE tokenizers; no tokenizer needed to budget."""

Similarity = Callable[[Collection[str], Collection[str]], float]


@runtime_checkable
class DemonstrationSource(Protocol):
    """Chooses the demonstrations for one request; ListwiseRanker calls it per request."""

    def select(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate]
    ) -> list[Demonstration]: ...


def check_demonstration(demo: Demonstration) -> None:
    """A demonstration's answer must be one of its own candidates (it is shown by label)."""
    if demo.chosen_title not in demo.candidate_titles:
        raise ValueError(f"demonstration's chosen title {demo.chosen_title!r} "
                         "is not among its candidate titles")


def jaccard(a: Collection[str], b: Collection[str]) -> float:
    """Shared items over all items of the two sets; 0 for two empty sets."""
    sa, sb = set(a), set(b)
    union = len(sa | sb)
    return len(sa & sb) / union if union else 0.0


def estimate_tokens(demo: Demonstration) -> int:
    """Tokens one demonstration adds to a prompt, as characters / 4 (an upper estimate:
    each title line is counted with its bullet, label and feeling)."""
    chars = DEMO_OVERHEAD_CHARS + len(demo.reason)
    chars += sum(min(len(t), TITLE_CHARS) + 12 for t in demo.history_titles)
    chars += sum(min(len(t), TITLE_CHARS) + 8 for t in demo.candidate_titles)
    return math.ceil(chars / CHARS_PER_TOKEN)


def leaks(
    demo: Demonstration, *, user_id: str | None, ids: Collection[str], titles: Collection[str]
) -> bool:
    """Would showing `demo` hint at the answer? Same user, or its chosen item is one of the
    current history or candidate items (by id when it has one, and always by title)."""
    if user_id is not None and demo.user_id == user_id:
        return True
    if demo.chosen_id is not None and demo.chosen_id in ids:
        return True
    return demo.chosen_title in titles


class DemonstrationSelector:
    """The k demonstrations of a pool most similar to the current history, leak-free, in a
    token budget. `similar=False` keeps the pool's own order (fixed demonstrations, with a
    leaking one replaced by the next), so both ways share every rule but the ranking."""

    def __init__(
        self,
        pool: Sequence[Demonstration],
        k: int,
        *,
        similar: bool = True,
        budget_tokens: int = 1000,
        exclude_users: Collection[str] = (),
        similarity: Similarity = jaccard,
    ) -> None:
        if k < 0 or budget_tokens < 1:
            raise ValueError("k must be >= 0 and budget_tokens >= 1")
        for demo in pool:
            check_demonstration(demo)
        excluded = set(exclude_users)
        # Users evaluated elsewhere (the LLM sample) never donate: the ranker is not told
        # who the user is, so their own examples are kept out of the pool itself.
        self.pool = [d for d in pool if d.user_id is None or d.user_id not in excluded]
        self.k = k
        self.similar = similar
        self.budget_tokens = budget_tokens
        self.similarity = similarity
        # Matched by ids when a demonstration has them, else by titles; built once.
        self._keys = [(True, frozenset(d.history_ids)) if d.history_ids
                      else (False, frozenset(d.history_titles)) for d in self.pool]

    def select(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate],
        *, user_id: str | None = None,
    ) -> list[Demonstration]:
        """Best first; fewer than k when the pool or the budget runs out."""
        if self.k == 0:
            return []
        items = [item for _, item in history] + [c.item for c in candidates]
        ids = {item.id for item in items}
        titles = {item.title for item in items}
        history_ids = frozenset(item.id for _, item in history)
        history_titles = frozenset(item.title for _, item in history)
        order = list(range(len(self.pool)))
        if self.similar:
            scores = [self.similarity(key, history_ids if by_id else history_titles)
                      for by_id, key in self._keys]
            order.sort(key=lambda n: -scores[n])  # stable: ties keep the pool's order
        chosen: list[Demonstration] = []
        left = self.budget_tokens
        for n in order:
            demo = self.pool[n]
            if leaks(demo, user_id=user_id, ids=ids, titles=titles):
                continue
            cost = estimate_tokens(demo)
            if cost > left:
                continue  # a shorter one further down may still fit
            chosen.append(demo)
            left -= cost
            if len(chosen) == self.k:
                break
        return chosen
