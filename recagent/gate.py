"""Turn whatever a ranker proposed into a list that is never wrong.

Rules, in order: only candidate ids, never a seen id, never a duplicate, every item
with a non-empty explanation, exactly min(k, available) items. Anything dropped or
filled in is written into `repairs`, so a repaired answer is visible and countable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from recagent.types import Candidate, RankedItem


def retrieval_reason(candidate: Candidate, history_titles: Mapping[str, str]) -> str:
    """An explanation from retrieval evidence, for items the LLM did not explain."""
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
) -> tuple[list[RankedItem], list[str]]:
    """The final top-k: the ranker's valid picks first, then retrieval order. A reason of
    None (the ranker was not asked to explain) is answered from retrieval evidence."""
    by_id = {c.item.id: c for c in candidates}
    picked: list[tuple[Candidate, str, str]] = []
    taken: set[str] = set()
    repairs: list[str] = []
    for item_id, reason in order:
        if len(picked) == k:
            break
        if item_id not in by_id:
            repairs.append(f"dropped {item_id!r}: not a candidate")
        elif item_id in seen:
            repairs.append(f"dropped {item_id!r}: already in the history")
        elif item_id in taken:
            repairs.append(f"dropped {item_id!r}: duplicate")
        else:
            candidate = by_id[item_id]
            if reason is None:
                picked.append((candidate, retrieval_reason(candidate, history_titles), "llm"))
            elif not reason.strip():
                repairs.append(f"empty reason for {item_id!r}: used retrieval evidence")
                picked.append((candidate, retrieval_reason(candidate, history_titles),
                               "retrieval"))
            else:
                picked.append((candidate, reason.strip(), "llm"))
            taken.add(item_id)
    filled = 0
    for candidate in candidates:
        if len(picked) == k:
            break
        if candidate.item.id in taken or candidate.item.id in seen:
            continue
        picked.append((candidate, retrieval_reason(candidate, history_titles), "retrieval"))
        taken.add(candidate.item.id)
        filled += 1
    if filled and order:
        repairs.append(f"filled {filled} item(s) from retrieval order")
    items = [
        RankedItem(item_id=c.item.id, title=c.item.title, score=round(1.0 / (pos + 1), 6),
                   explanation=reason, source=source)
        for pos, (c, reason, source) in enumerate(picked)
    ]
    return items, repairs
