"""The catalog shapes every package shares: items, interactions, histories, candidates.

They live on the ground floor (`retrieval/`), below `recagent/` and `eval/`, so that the
dependency direction is one way: eval → recagent → retrieval. `recagent.types` re-exports
them next to the recommendation-level shapes, which is where users import them from.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

MetadataValue = str | int | float | bool
"""Chroma metadata values are scalars; lists (e.g. genres) are stored joined by '|'."""

POSITIVE_RATING = 4.0
NEGATIVE_RATING = 2.0


class Frozen(BaseModel):
    """Immutable, and unknown fields are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Item(Frozen):
    """A catalog entry: the text is what gets embedded and shown to the LLM."""

    id: Annotated[str, Field(min_length=1, max_length=256)]
    title: Annotated[str, Field(min_length=1)]
    text: str
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class Interaction(Frozen):
    """One thing a user did with an item: a rating, a like/dislike, or just a view."""

    item_id: Annotated[str, Field(min_length=1)]
    rating: Annotated[float, Field(ge=0, le=10)] | None = None
    liked: bool | None = None
    ts: int | None = None

    @property
    def polarity(self) -> int:
        """+1 liked, -1 disliked, 0 neutral: explicit likes win over ratings."""
        if self.liked is not None:
            return 1 if self.liked else -1
        if self.rating is None:
            return 1  # a bare interaction (a view, a purchase) is implicit positive feedback
        if self.rating >= POSITIVE_RATING:
            return 1
        if self.rating <= NEGATIVE_RATING:
            return -1
        return 0


class UserHistory(Frozen):
    """A user's interactions; order is chronological when timestamps are present."""

    user_id: str | None = None
    interactions: list[Interaction]

    @model_validator(mode="after")
    def _no_duplicate_items(self) -> UserHistory:
        seen: set[str] = set()
        dupes: set[str] = set()
        for interaction in self.interactions:
            (dupes if interaction.item_id in seen else seen).add(interaction.item_id)
        if dupes:
            raise ValueError(f"history lists these item ids more than once: {sorted(set(dupes))}")
        return self

    @classmethod
    def from_ids(cls, item_ids: list[str], user_id: str | None = None) -> UserHistory:
        """A history of liked items in the given order (oldest first)."""
        return cls(
            user_id=user_id,
            interactions=[Interaction(item_id=i, liked=True, ts=n) for n, i in enumerate(item_ids)],
        )

    def chronological(self) -> list[Interaction]:
        """Oldest first; without full timestamps the given order is taken as chronological."""
        if any(i.ts is None for i in self.interactions):
            return list(self.interactions)
        return sorted(self.interactions, key=lambda i: i.ts or 0)

    @property
    def seen_ids(self) -> set[str]:
        return {i.item_id for i in self.interactions}


class Candidate(Frozen):
    """An item proposed by retrieval, with where it came from and how strongly."""

    item: Item
    rank: int
    score: float
    scores_by_source: dict[str, float] = Field(default_factory=dict)
    nearest_history_id: str | None = None


class IngestReport(Frozen):
    """What one ingestion did: only `added` and `updated` items were embedded and written."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    total: int = 0
    """Items in the input (added + updated + unchanged), not the collection size."""


class Retriever(Protocol):
    """The one retriever interface: up to n unseen items for a history, best first."""

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]: ...
