"""The one final gate: whatever a ranker proposed becomes a list that is never wrong.

Rules, in order: only candidate ids, never a seen id, never a duplicate (a catalog may
list one film under two ids: the same title and year count as the same film), nothing that
breaks a limit of the request (a chat profile's genres and years, say), every item with
a non-empty explanation, exactly min(k, allowed candidates) items, topped up in retrieval
order. Everything dropped, re-explained or filled in is a typed `Repair`, so a repaired
answer is visible and countable by kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence

from recagent.chat.lookup import normalise_title
from recagent.explain.checker import text_problem
from recagent.types import (
    Candidate,
    Item,
    RankedItem,
    Repair,
    RepairKind,
)

Limits = Callable[[Item], list[str]]
"""Why an item may not be shown for this request, in words (empty: it may)."""


def no_limits(item: Item) -> list[str]:
    """The default: every candidate may be shown."""
    return []


_YEAR = re.compile(r"\((\d{4})\)")


def film_key(title: str) -> tuple[str, str | None]:
    """What makes two catalog entries the same film: the normalised title and the year in
    parentheses ("Chasing Amy (1997)" is ids 246 and 268 of MovieLens 100K; "Sabrina
    (1954)" and "Sabrina (1995)" are two films)."""
    years = _YEAR.findall(title)
    return normalise_title(title), years[-1] if years else None


def retrieval_reason(candidate: Candidate, history_titles: Mapping[str, str]) -> str:
    """A placeholder explanation from retrieval evidence, for items the ranker did not
    explain. The facade replaces every explanation with one written from the item's full
    evidence and checked (recagent/explain); this is what `assemble` alone returns."""
    nearest = candidate.nearest_history_id
    if nearest and nearest in history_titles:
        return f"Close in content to {history_titles[nearest]}, which you liked."
    return "A close content match to your history."


def assemble(
    order: Sequence[tuple[str, str | None]],
    candidates: Sequence[Candidate],
    seen: Collection[str],
    k: int,
    history_titles: Mapping[str, str],
    *,
    limits: Limits = no_limits,
) -> tuple[list[RankedItem], list[Repair]]:
    """The final top-k: the ranker's valid picks first, then retrieval order. A reason of
    None (the ranker was not asked to explain) is answered from retrieval evidence, and
    that is not a repair. A candidate that breaks `limits` is never shown, whether the
    ranker picked it or the top-up reached it; each is one "violates" repair."""
    by_id = {c.item.id: c for c in candidates}
    picked: list[tuple[Candidate, str, str]] = []
    taken: set[str] = set()
    seen_films = {film_key(t) for i, t in history_titles.items() if i in seen}
    taken_films: set[tuple[str, str | None]] = set()

    def twin(candidate: Candidate, films: set[tuple[str, str | None]]) -> bool:
        return film_key(candidate.item.title) in films
    refused: set[str] = set()
    repairs: list[Repair] = []

    def violates(candidate: Candidate) -> bool:
        problems = limits(candidate.item)
        if problems and candidate.item.id not in refused:
            refused.add(candidate.item.id)
            repairs.append(Repair(
                kind="violates", item_id=candidate.item.id,
                detail=f"dropped {candidate.item.title!r}: {'; '.join(problems)}"))
        return bool(problems)

    for item_id, reason in order:
        if len(picked) == k:
            break
        candidate = by_id.get(item_id)
        if candidate is None:
            repairs.append(Repair(kind="not_candidate", item_id=item_id,
                                  detail=f"dropped {item_id!r}: not a candidate"))
        elif item_id in seen or twin(candidate, seen_films):
            repairs.append(Repair(kind="seen", item_id=item_id,
                                  detail=f"dropped {item_id!r}: already in the history"
                                         + ("" if item_id in seen else " (the same film)")))
        elif item_id in taken or twin(candidate, taken_films):
            repairs.append(Repair(kind="duplicate", item_id=item_id,
                                  detail=f"dropped {item_id!r}: duplicate"
                                         + ("" if item_id in taken else " (the same film)")))
        elif violates(candidate):
            continue
        else:
            if reason is None:
                picked.append((candidate, retrieval_reason(candidate, history_titles), "llm"))
            elif problem := text_problem(reason, [r for _, r, _ in picked]):
                kind: RepairKind = "empty_reason" if problem == "empty" else "unusable_reason"
                repairs.append(Repair(
                    kind=kind, item_id=item_id,
                    detail=f"{problem} reason for {item_id!r}: used retrieval evidence"))
                picked.append((candidate, retrieval_reason(candidate, history_titles),
                               "retrieval"))
            else:
                picked.append((candidate, reason.strip(), "llm"))
            taken.add(item_id)
            taken_films.add(film_key(candidate.item.title))
    filled = 0
    for candidate in candidates:
        if len(picked) == k:
            break
        if candidate.item.id in taken or candidate.item.id in seen or twin(
                candidate, seen_films | taken_films) or violates(candidate):
            continue
        picked.append((candidate, retrieval_reason(candidate, history_titles), "retrieval"))
        taken.add(candidate.item.id)
        taken_films.add(film_key(candidate.item.title))
        filled += 1
    if filled and order:
        repairs.append(Repair(kind="filled", count=filled,
                              detail=f"filled {filled} item(s) from retrieval order"))
    items = [
        RankedItem(item_id=c.item.id, title=c.item.title, score=round(1.0 / (pos + 1), 6),
                   explanation=reason, source=source)
        for pos, (c, reason, source) in enumerate(picked)
    ]
    return items, repairs
