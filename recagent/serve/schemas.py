"""The HTTP contract of `recagent serve` as pydantic models: what a request may hold, and
what every answer looks like. FastAPI validates requests against these (a 422 names the
field) and publishes them in the OpenAPI schema that the fuzz tests read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from recagent.types import MESSAGE_MAX_CHARS, YEAR_MAX, YEAR_MIN


def _unicode(text: str) -> str:
    """JSON may carry a lone surrogate ("\\ud800") that no text store or answer can: refused
    by name here rather than failing deeper (a 500)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds a lone surrogate (\\ud800-\\udfff): not valid Unicode text") \
            from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]
ItemId = Annotated[Text, Field(min_length=1, max_length=256)]
Year = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)]
Deadline = Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)]
SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"
"""uuid4().hex: anything else in a path is refused before any lookup."""
MAX_HISTORY = 200
MAX_LIST = 100


class _Request(BaseModel):
    """Unknown fields are an error: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class HistoryEntry(_Request):
    item_id: ItemId
    rating: Annotated[float, Field(ge=1, le=5, allow_inf_nan=False)] | None = None
    liked: bool | None = None


class Filters(_Request):
    genres: Annotated[list[Annotated[Text, Field(min_length=1, max_length=64)]],
                      Field(max_length=50)] = Field(default_factory=list)
    """Only items with at least one of these catalog genres."""
    year_min: Year | None = None
    year_max: Year | None = None
    exclude: Annotated[list[ItemId], Field(max_length=MAX_LIST)] = Field(default_factory=list)
    """Never return these items (they are not counted as history)."""

    @model_validator(mode="after")
    def _years_in_order(self) -> Filters:
        if self.year_min is not None and self.year_max is not None \
                and self.year_min > self.year_max:
            raise ValueError(f"year_min {self.year_min} is after year_max {self.year_max}")
        return self


HISTORY_SHAPES = ('history is a list, oldest first, of item ids (["1", "50"] or [1, 50]) '
                  'or of objects ({"item_id": "1", "rating": 4} or {"item_id": "1", '
                  '"liked": true}), mixed as you like')


class RecommendRequest(_Request):
    history: Annotated[list[HistoryEntry], Field(min_length=1, max_length=MAX_HISTORY)]
    """Oldest first: item ids (strings or whole numbers: liked, no rating) or
    HistoryEntry objects."""
    k: Annotated[int, Field(ge=1, le=50)] = 10
    filters: Filters | None = None
    deadline_s: Deadline | None = None
    """Seconds this answer may take; past it the answer is the non-LLM ranking, degraded."""

    @field_validator("history", mode="before")
    @classmethod
    def _plain_ids(cls, value: Any) -> Any:
        """A plain id (as `--history 1,50` suggests) is an entry with that id."""
        if not isinstance(value, list):
            return value
        return [plain_entry(v) for v in value]


def plain_entry(value: Any) -> Any:
    """"1" or 1 → {"item_id": "1"}; anything else as it is (an object is validated as a
    HistoryEntry; true, 1.5 or null are refused there by name)."""
    if isinstance(value, str):
        return {"item_id": value}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"item_id": str(value)}
    return value


def invalid_request(errors: Sequence[Any]) -> str:
    """Validation errors in one line, each named by its field, never echoing the value
    (which JSON may not carry); a wrong history shape also says which shapes are taken."""
    parts, history = [], False
    for e in errors:
        loc = [str(p) for p in e["loc"] if p != "body"]
        history = history or (bool(loc) and loc[0] == "history")
        parts.append(f"{'.'.join(loc) or 'body'}: {e['msg']}")
    return "; ".join(parts) + (f" ({HISTORY_SHAPES})" if history else "")


class NewSession(_Request):
    k: Annotated[int, Field(ge=1, le=50)] = 5
    """Items per list."""
    agent: bool = False
    """The agent plans each turn (one LLM call: a plan of tool calls over the catalog);
    any failure answers by the rules, marked degraded. Needs an LLM."""


class MessageRequest(_Request):
    text: Annotated[Text, Field(min_length=1, max_length=MESSAGE_MAX_CHARS)]
    deadline_s: Deadline | None = None


FeedbackKind = Literal["like", "dislike", "seen"]


class FeedbackRequest(_Request):
    item_id: ItemId
    kind: FeedbackKind
    deadline_s: Deadline | None = None


ProfileField = Literal["liked", "disliked", "seen", "include_genres", "exclude_genres",
                       "year_min", "year_max", "wishes"]


class RemoveRequest(_Request):
    field: ProfileField
    value: Annotated[Text, Field(min_length=1, max_length=256)]
    deadline_s: Deadline | None = None


# ---- answers ---------------------------------------------------------------------------


class Item(BaseModel):
    item_id: str
    title: str
    score: float
    explanation: str
    source: str | None = None


class RecommendResponse(BaseModel):
    items: list[Item]
    degraded: bool
    degraded_reason: str | None = None
    degraded_steps: list[str] = Field(default_factory=list)
    """"step:reason" of each LLM step that failed ("explain:deadline", "rank:parse")."""
    trace: dict[str, Any]


class CatalogItem(BaseModel):
    item_id: str
    title: str
    genres: list[str]
    year: int | None = None


class ItemsResponse(BaseModel):
    items: list[CatalogItem]


class Chip(BaseModel):
    field: ProfileField
    value: str
    label: str


class Message(BaseModel):
    role: Literal["user", "assistant"]
    text: str


class SessionView(BaseModel):
    session_id: str
    reply: str | None = None
    items: list[Item] = Field(default_factory=list)
    profile: dict[str, Any]
    """{"chips": [Chip], ...the PreferenceProfile's fields}."""
    messages: list[Message] = Field(default_factory=list)
    degraded: bool = False
    degraded_reason: str | None = None
    """Why the last list is a fallback: the ranker's reason kind, or agent_<step> when an
    agent turn answered by the rules (plan, tool, deadline, gate, empty)."""
    agent: bool = False
    """Turns are planned by the agent."""


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    chroma: bool
    llm: bool | None
    """None: the service runs without an LLM (--no-llm)."""


class SessionRecord(BaseModel):
    """A session as the database keeps it: the chat state that `ChatSession.from_json`
    restores, and what the last answer showed. `version` grows by one with each save, so
    two replicas that change one session at once cannot overwrite each other unseen."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    state: str
    """`ChatSession.to_json()`: profile, last list shown, turns, k."""
    reply: str | None = None
    items: list[Item] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    degraded: bool = False
    degraded_reason: str | None = None
    version: int = 0
