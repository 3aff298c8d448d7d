"""The agent's data shapes: the plan the model writes, what the executor did with it, and
the trace of one turn. Kept apart from recagent/types.py (which only re-exports the turn's
trace) so the agent's vocabulary stays in one place."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

ToolName = Literal["find_titles", "facts", "filter", "similar_to", "recommend", "explain"]
TOOLS: tuple[ToolName, ...] = ("find_titles", "facts", "filter", "similar_to", "recommend",
                               "explain")
MAX_STEPS = 6
"""The most tool calls one plan may make (more are cut off, and counted as a repair)."""
TITLE_MAX_CHARS = 80
VALUE_MAX_CHARS = 60
MAX_TITLES = 4
MAX_VALUES = 4
MAX_CONDITIONS = 4

Title = Annotated[str, Field(min_length=1, max_length=TITLE_MAX_CHARS)]
Value = Annotated[str, Field(min_length=1, max_length=VALUE_MAX_CHARS)]
Year = Annotated[int, Field(ge=1800, le=2100)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TitlesArgs(_Args):
    """find_titles, facts, similar_to: titles as the user wrote them (empty: the ones
    found earlier in the turn)."""

    titles: list[Title] = Field(default_factory=list, max_length=MAX_TITLES)


class Condition(_Args):
    """One attribute and the values wanted (any of them) or ruled out (all of them)."""

    attribute: Annotated[str, Field(min_length=1, max_length=30)]
    values: list[Value] = Field(min_length=1, max_length=MAX_VALUES)


class FilterArgs(_Args):
    """filter: hard limits over item attributes, never over titles."""

    include: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    exclude: list[Condition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    year_min: Year | None = None
    year_max: Year | None = None


class NoArgs(_Args):
    """recommend and explain work on the buffer."""


ARGS: dict[ToolName, type[_Args]] = {
    "find_titles": TitlesArgs, "facts": TitlesArgs, "similar_to": TitlesArgs,
    "filter": FilterArgs, "recommend": NoArgs, "explain": NoArgs,
}


class Step(BaseModel):
    """One validated tool call."""

    model_config = ConfigDict(frozen=True)
    tool: ToolName
    args: TitlesArgs | FilterArgs | NoArgs


class RawStep(BaseModel):
    """A step as the model wrote it, before validation: any tool name, any arguments."""

    model_config = ConfigDict(extra="ignore")
    tool: str
    args: dict[str, object] = Field(default_factory=dict)


class RawPlan(BaseModel):
    """The model's answer, parsed leniently: the executor validates each step itself, so
    one bad step is repaired rather than the whole plan thrown away."""

    model_config = ConfigDict(extra="ignore")
    steps: list[RawStep]


PlanRepairKind = Literal["unknown_tool", "bad_args", "too_many_steps", "added_recommend",
                         "moved_recommend", "ungrounded"]
"""What the executor changed about a plan: dropped a step naming no tool it knows
(unknown_tool) or with arguments outside the tool's schema (bad_args), cut the plan at
MAX_STEPS (too_many_steps), added the final recommend step (added_recommend), moved a
recommend written before other steps to the end (moved_recommend), or dropped a title or
attribute value that the message does not say or the catalog does not hold (ungrounded)."""


class PlanRepair(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: PlanRepairKind
    step: int | None = None
    """The 0-based position in the plan as written; None for an added step."""
    detail: str


class ToolCall(BaseModel):
    """One tool run: what it was asked, what it gave back, and how long it took."""

    model_config = ConfigDict(frozen=True)
    tool: ToolName
    args: dict[str, object]
    buffer_in: int
    """Item ids in the buffer before the call (-1: not yet narrowed, the whole catalog)."""
    buffer_out: int
    latency_s: float
    result: str
    """What the call found, in a line for people: never parse it."""


AgentDegradedStep = Literal["plan", "tool", "deadline", "gate", "empty"]
"""Where an agent turn failed and fell back to the rules path: the plan call (no usable
plan), a tool (it raised or ran out of its time budget), the turn's deadline, the final
gate (an item broke a hard constraint: never shown), or an empty final list."""


class AgentTrace(BaseModel):
    """How an agent turn came about: the plan, each tool call with its time, the repairs,
    and, when it fell back to the rules path, where and why."""

    model_config = ConfigDict(frozen=True)
    model: str | None = None
    raw_plan: str | None = None
    plan: list[Step] = Field(default_factory=list)
    """The plan as run (after validation and repair)."""
    valid: bool = False
    """The plan as written passed every check (known tools, argument schemas, at most
    MAX_STEPS, ending with recommend) before any repair."""
    repairs: list[PlanRepair] = Field(default_factory=list)
    calls: list[ToolCall] = Field(default_factory=list)
    plan_latency_s: float = 0.0
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    degraded: bool = False
    degraded_step: AgentDegradedStep | None = None
    degraded_reason: str | None = None
    """The failure in words ("TypeName: message"): never parse it; count by step."""
