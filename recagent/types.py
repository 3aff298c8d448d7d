"""The data shapes of recagent, in one place.

Everything that crosses a module boundary is one of these pydantic models, so a
shape is defined once and validated the same way everywhere.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from recagent.agent.types import AgentTrace
from recagent.failures import (
    Degradation as Degradation,
)
from recagent.failures import (
    DegradedReason as DegradedReason,
)
from recagent.failures import (
    DegradedStep as DegradedStep,
)
from recagent.failures import (
    ExplanationCounts as ExplanationCounts,
)
from recagent.failures import (
    ExplanationFailure as ExplanationFailure,
)
from recagent.failures import (
    ExplanationFailureKind as ExplanationFailureKind,
)
from recagent.failures import (
    ExplanationKind as ExplanationKind,
)
from recagent.failures import (
    ExplanationRecord as ExplanationRecord,
)
from recagent.failures import (
    Repair as Repair,
)
from recagent.failures import (  # the shapes of what went wrong, re-exported
    RepairKind as RepairKind,
)
from recagent.failures import (
    degraded_reason as degraded_reason,
)
from retrieval.types import (  # the catalog shapes, re-exported: import them from here
    NEGATIVE_RATING as NEGATIVE_RATING,
)
from retrieval.types import (
    POSITIVE_RATING as POSITIVE_RATING,
)
from retrieval.types import (
    Candidate as Candidate,
)
from retrieval.types import (
    Frozen,
)
from retrieval.types import (
    IngestReport as IngestReport,
)
from retrieval.types import (
    Interaction as Interaction,
)
from retrieval.types import (
    Item as Item,
)
from retrieval.types import (
    MetadataValue as MetadataValue,
)
from retrieval.types import (
    UserHistory as UserHistory,
)


class Demonstration(Frozen):
    """A few-shot example: a short history and the item that user chose next.

    The ids are optional; when present they let a selector match histories and refuse a
    demonstration that would leak the current user's answer (recagent/demonstrations.py)."""

    history_titles: list[str]
    candidate_titles: list[str]
    chosen_title: str
    reason: str
    user_id: str | None = None
    """Whose example this is: never shown to the user it came from."""
    history_ids: list[str] = Field(default_factory=list)
    """The donor's items before its choice (may be longer than the titles shown)."""
    chosen_id: str | None = None


class HistoryLink(Frozen):
    """A history item that brought a recommended item, and what ties the two together."""

    item_id: str
    title: str
    genres: list[str] = Field(default_factory=list)
    """The history item's own genres."""
    shared_genres: list[str] = Field(default_factory=list)
    """Genres both items have, in the recommended item's order."""
    same_year: bool = False
    same_decade: bool = False
    nearest: bool = False
    """Retrieval named it as the recommended item's closest liked item (content, or
    co-occurrence when no content source proposed the item)."""
    co_liked: Annotated[int, Field(ge=0)] | None = None
    """People (other than this user) with a positive interaction on both items."""
    support: Annotated[int, Field(ge=0)] | None = None
    """People (other than this user) with a positive interaction on the history item."""
    strength: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """co_liked / support: "liked by 62% of people who liked it"; None without statistics,
    with too little support to quote, or when no higher than the share of everyone who
    liked the item (then it is no reason)."""


class Evidence(Frozen):
    """Why an item was recommended, in facts only: what an explanation may say."""

    item_id: str
    title: str
    year: int | None = None
    genres: list[str] = Field(default_factory=list)
    because: list[HistoryLink] = Field(default_factory=list)
    """The user's liked items that brought it, strongest first."""
    sources: list[str] = Field(default_factory=list)
    """The retrieval sources that proposed it ('semantic', 'cooccurrence', 'popularity',
    'profile', ...), the fused score left out."""
    popularity: Annotated[int, Field(ge=0)] | None = None
    """People (other than this user) with a positive interaction on it; None without
    statistics."""


class RankedItem(Frozen):
    item_id: str
    title: str
    score: float
    explanation: Annotated[str, Field(min_length=1)]
    """The sentence shown: written from `evidence` and checked (recagent/explain)."""
    source: str = "llm"
    """'llm' when an LLM's answer placed it; 'retrieval' when it was filled in, or no LLM
    ranked the list (--no-llm, a fit without the LLM, a failed ranking), or (straight from
    the gate) when the ranker's own reason was unusable."""
    evidence: Evidence | None = None
    """What the explanation was written from; None straight from the gate."""


class Usage(Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_s: float | None = None
    """Seconds the server spent reading the prompt, when it says (llama.cpp does)."""
    generation_s: float | None = None
    """Seconds the server spent generating, when it says."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            prompt_s=_plus(self.prompt_s, other.prompt_s),
            generation_s=_plus(self.generation_s, other.generation_s),
        )


def _plus(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else a + b


class Completion(Frozen):
    """What one LLM call returned: raw text, token usage, and top logprobs if asked."""

    text: str
    usage: Usage = Usage()
    latency_s: float = 0.0
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    """Per generated token: candidate token → logprob."""
    finish_reason: str | None = None
    """Why the server stopped ("stop"; "length": cut off at max_tokens); None: not said."""


class Invocation(Frozen):
    """A structured LLM call with everything needed to audit it."""

    template: str
    template_hash: str
    model: str
    messages: list[dict[str, str]]
    raw: str
    attempts: int
    usage: Usage
    latency_s: float
    steps: list[Invocation] = Field(default_factory=list)
    """The calls of a multi-step ranker (NIR), in order; empty for a single call."""
    fallback: str | None = None
    """What was used instead of an unusable answer in an intermediate step, if anything."""
    finish_reason: str | None = None
    """The last answer's (Completion.finish_reason): "length" means it was cut off."""


class Trace(Frozen):
    """How a recommendation came about: enough to reproduce and to count failures."""

    template: str | None = None
    template_hash: str | None = None
    model: str | None = None
    attempts: int = 0
    repaired: bool = False
    repairs: list[Repair] = Field(default_factory=list)
    degraded: bool = False
    """True when any step in `degradations` failed (set from them)."""
    degraded_reason: DegradedReason | None = None
    """The first failed step's reason (see `degradations` for every step)."""
    degraded_detail: str | None = None
    """The failure in words: the exception as "TypeName: message", or the reason."""
    degradations: list[Degradation] = Field(default_factory=list)
    """Every LLM step asked for that failed, in the order they ran: what `degraded` means."""
    usage: Usage = Usage()
    """Tokens of every LLM call of the request: ranking, explanation wording, extraction."""
    llm_latency_s: float = 0.0
    latency_s: float = 0.0
    n_candidates: int = 0
    steps: list[Invocation] = Field(default_factory=list)
    """Each LLM call of a multi-step ranker (template, hash, raw output, usage, latency)."""
    explanations: list[ExplanationRecord] = Field(default_factory=list)
    """One per returned item, in list order: who wrote its explanation, and why an LLM
    sentence was replaced."""
    explanation_counts: ExplanationCounts = ExplanationCounts()
    explain_call: Invocation | None = None
    """The explanation-writing LLM call (its usage is counted in `usage` too)."""

    @model_validator(mode="before")
    @classmethod
    def _one_meaning(cls, data: object) -> object:
        """`degraded` and its reason follow `degradations`; a trace built the older way
        (degraded=True with a reason, no list) gets the ranking step's degradation."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        found = [d if isinstance(d, Degradation) else Degradation.model_validate(d)
                 for d in data.get("degradations") or []]
        if not found and data.get("degraded"):
            reason = data.get("degraded_reason") or "error"
            found = [Degradation.model_validate({
                "step": "rank", "reason": reason,
                "detail": data.get("degraded_detail") or reason})]
        data["degradations"] = found
        data["degraded"] = bool(found)
        if found:
            data["degraded_reason"] = found[0].reason
            data["degraded_detail"] = data.get("degraded_detail") or found[0].detail
        return data

    @property
    def degraded_codes(self) -> list[str]:
        """"step:reason" of every failed step ("explain:deadline", "rank:parse")."""
        return [d.code for d in self.degradations]

    def degrade(self, *failed: Degradation) -> Trace:
        """This trace with more failed steps (a step run after the recommender's, such as
        chat extraction or an agent plan)."""
        return Trace.model_validate({**self.model_dump(exclude={"degradations"}),
                                     "degradations": [*self.degradations, *failed],
                                     "degraded_detail": None})


class Recommendation(Frozen):
    items: list[RankedItem]
    trace: Trace

    @property
    def degraded(self) -> bool:
        return self.trace.degraded

    @model_validator(mode="after")
    def _unique(self) -> Recommendation:
        ids = [i.item_id for i in self.items]
        if len(ids) != len(set(ids)):
            raise ValueError(f"recommendation repeats items: {ids}")
        return self


# ---- chat: a conversation's structured preference profile --------------------------------

MESSAGE_MAX_CHARS = 2000
"""Longest chat message accepted; longer ones are a ConfigError, not a truncation."""
YEAR_MIN, YEAR_MAX = 1800, 2100


class ItemRef(Frozen):
    """A catalog item a user referred to, with the words that matched it (shown back)."""

    item_id: str
    title: str
    said: Annotated[str, Field(max_length=200)]
    how: str = "title"
    """'title' (matched by retrieval + title text), 'id', or 'list' ('the second one')."""


Year = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)]


class ProfileDelta(Frozen):
    """What one message changes, before titles are looked up in the catalog."""

    liked: list[str] = Field(default_factory=list)
    disliked: list[str] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    include_genres: list[str] = Field(default_factory=list)
    exclude_genres: list[str] = Field(default_factory=list)
    allow_genres: list[str] = Field(default_factory=list)
    """Genres no longer ruled out ("horror is fine again"), without requiring them."""
    year_min: Year | None = None
    year_max: Year | None = None
    clear_years: bool = False
    """"any year": drop both year limits (before this delta's own limits apply)."""
    wishes: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self == ProfileDelta()


class PreferenceProfile(Frozen):
    """A chat session's state: what the user liked, ruled out and asked for so far.

    Genre and year limits and every liked/disliked/seen item are hard constraints:
    they become retrieval filters and a final check on each returned item."""

    liked: list[ItemRef] = Field(default_factory=list)
    disliked: list[ItemRef] = Field(default_factory=list)
    seen: list[ItemRef] = Field(default_factory=list)
    include_genres: list[str] = Field(default_factory=list)
    exclude_genres: list[str] = Field(default_factory=list)
    year_min: Year | None = None
    year_max: Year | None = None
    wishes: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list)

    @property
    def excluded_ids(self) -> set[str]:
        """Never recommended again: everything the user named, whatever they felt."""
        return {r.item_id for r in (*self.liked, *self.disliked, *self.seen)}


class ChatTurn(Frozen):
    """One exchange: the reply, the list shown, and the profile after this message."""

    message: str
    reply: str
    items: list[RankedItem]
    profile: PreferenceProfile
    matched: list[ItemRef] = Field(default_factory=list)
    """Items the user's words were resolved to in this turn."""
    unresolved: list[str] = Field(default_factory=list)
    """Titles the user named that the catalog does not hold."""
    notes: list[str] = Field(default_factory=list)
    """What went wrong or was overridden (unusable extraction, dropped items, …)."""
    degraded: bool = False
    trace: Trace | None = None
    agent: AgentTrace | None = None
    """The agent's plan, tool calls and repairs (agent turns only; `degraded` with its
    step and reason when the turn fell back to the rules path)."""


class ShownItem(Frozen):
    """An item of the list last shown in a chat, for "the second one"."""

    item_id: str
    title: str


class ChatState(Frozen):
    """A chat session as saved to JSON: enough to go on where it stopped."""

    version: Annotated[int, Field(ge=1, le=1)] = 1
    k: Annotated[int, Field(ge=1, le=50)]
    profile: PreferenceProfile
    shown: list[ShownItem] = Field(default_factory=list)
    last_ref: ItemRef | None = None
    turns: Annotated[int, Field(ge=0)] = 0
    agent: bool = False
    """Turns are planned by the agent (recagent/agent), not read by rules alone."""
