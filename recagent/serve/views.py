"""recagent's shapes as the HTTP answers show them (recagent/serve/schemas.py)."""

from __future__ import annotations

from typing import Any

from recagent.serve.schemas import (
    CatalogItem,
    Chip,
    Item,
    ProfileField,
    RecommendResponse,
    SessionRecord,
    SessionView,
)
from recagent.types import ChatState, ItemRef, PreferenceProfile, RankedItem, Recommendation
from recagent.types import Item as CatalogEntry

CHIP_FIELDS: tuple[ProfileField, ...] = ("liked", "disliked", "seen", "include_genres",
                                         "exclude_genres", "year_min", "year_max", "wishes")


def item_view(item: RankedItem) -> Item:
    return Item(item_id=item.item_id, title=item.title, score=item.score,
                explanation=item.explanation, source=item.source)


def trace_view(rec: Recommendation) -> dict[str, Any]:
    """The trace without the prompts and raw answers (`steps`, `explain_call`): those stay
    in the server's logs, not in every response; the explanation call's usage is kept."""
    trace = rec.trace.model_dump(mode="json", exclude={"steps", "explain_call"})
    call = rec.trace.explain_call
    trace["explain_usage"] = call.usage.model_dump() if call is not None else None
    return trace


def recommend_response(rec: Recommendation) -> RecommendResponse:
    return RecommendResponse(items=[item_view(i) for i in rec.items], degraded=rec.degraded,
                             degraded_reason=rec.trace.degraded_reason,
                             degraded_steps=rec.trace.degraded_codes, trace=trace_view(rec))


def chip_label(field: ProfileField, value: ItemRef | str | int) -> str:
    if isinstance(value, ItemRef):
        return f"{field}: {value.title}"
    return {
        "include_genres": f"only {value}", "exclude_genres": f"no {value}",
        "year_min": f"from {value}", "year_max": f"up to {value}",
    }.get(field, f"wish: {value}")


def chips(profile: PreferenceProfile) -> list[Chip]:
    """One removable chip per thing the profile holds, in CHIP_FIELDS order."""
    out: list[Chip] = []
    for field in CHIP_FIELDS:
        current = getattr(profile, field)
        values = current if isinstance(current, list) else [] if current is None else [current]
        for v in values:
            value = v.item_id if isinstance(v, ItemRef) else str(v)
            out.append(Chip(field=field, value=value, label=chip_label(field, v)))
    return out


def session_view(record: SessionRecord) -> SessionView:
    state = ChatState.model_validate_json(record.state)
    profile = state.profile
    return SessionView(
        session_id=record.session_id, reply=record.reply, items=record.items,
        profile={"chips": [c.model_dump() for c in chips(profile)],
                 **profile.model_dump(mode="json")},
        messages=record.messages, degraded=record.degraded,
        degraded_reason=record.degraded_reason, agent=state.agent)


def catalog_item(item: CatalogEntry) -> CatalogItem:
    """Genres from the item's `genres` ('A|B') or its `genre_<Name>` flags."""
    meta = item.metadata
    listed = meta.get("genres")
    genres = [g for g in listed.split("|") if g] if isinstance(listed, str) else [
        k[len("genre_"):] for k, v in meta.items() if k.startswith("genre_") and v is True]
    year = meta.get("year")
    return CatalogItem(item_id=item.id, title=item.title, genres=genres,
                       year=year if isinstance(year, int) and not isinstance(year, bool)
                       else None)
