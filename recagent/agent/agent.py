"""One agent turn: plan (one LLM call) → run the tools over the buffer → gate → reply.

The rules have already read the message into the session profile (they are exact where
they apply: years, genres, "I've seen X"); the plan adds what they cannot do (titles named
without a trigger phrase, people and other attributes, similarity to named items). On any
failure — no usable plan, a tool that raises or runs out of time, the turn's deadline, an
item that breaks a hard constraint at the gate, an empty list — the turn is the rules
path's own answer, marked degraded with the step and the reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from recagent.agent.catalog import CatalogIndex, Limits
from recagent.agent.executor import Executor, ToolFailed, ToolTimeout
from recagent.agent.planner import Planned, Planner
from recagent.agent.tools import (
    Explain,
    Facts,
    Filter,
    FindTitles,
    Recommend,
    SimilarTo,
    TurnState,
)
from recagent.agent.types import AgentDegradedStep, AgentTrace, ToolName
from recagent.chat.profile import violations
from recagent.chat.profile_recommend import ProfileRecommender, ProfileResult
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.types import PreferenceProfile, RankedItem, ShownItem

DEADLINE_S = 300.0
"""One turn, plan and tools together. The plan call of a 1.5B model on two busy cores can
take a minute; the product's own recommend a few seconds more."""
PLAN_BUDGET_S = 240.0


@dataclass(frozen=True)
class AgentOutcome:
    """What a turn shows, the profile after it, and how it came about."""

    items: list[RankedItem]
    profile: PreferenceProfile
    result: ProfileResult
    trace: AgentTrace
    seeds: list[str] = field(default_factory=list)
    facts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return self.trace.degraded or self.result.degraded


class Agent:
    """The plan-first tool loop over one catalog and the product's ProfileRecommender."""

    def __init__(self, client: LLMClient, prompts: PromptLibrary, engine: ProfileRecommender,
                 index: CatalogIndex, *, deadline_s: float = DEADLINE_S,
                 plan_budget_s: float = PLAN_BUDGET_S,
                 budgets_s: dict[ToolName, float] | None = None) -> None:
        self.engine = engine
        self.index = index
        genres = sorted(index.values.get("genres", {}).values())
        self.planner = Planner(client, prompts, attributes=index.attributes, genres=genres)
        self.executor = Executor({
            "find_titles": FindTitles(index), "facts": Facts(index),
            "filter": Filter(index, genres), "similar_to": SimilarTo(index, engine),
            "recommend": Recommend(index, engine), "explain": Explain(),
        }, budgets_s=budgets_s)
        self.deadline_s = deadline_s
        self.plan_budget_s = plan_budget_s

    def turn(self, message: str, profile: PreferenceProfile, shown: Sequence[ShownItem],
             k: int) -> AgentOutcome:
        """The turn's list under `profile` (the rules' reading of the message merged in)."""
        start = time.perf_counter()
        deadline = time.monotonic() + self.deadline_s
        base = AgentTrace(model=self.planner.model)
        try:
            planned = self._plan(message, profile, shown, deadline)
        except Exception as e:
            return self._fallback(profile, k, base, "plan", e, start)
        trace = base.model_copy(update={
            "raw_plan": planned.raw, "plan": planned.steps, "valid": not planned.repairs,
            "repairs": planned.repairs, "plan_latency_s": planned.completion.latency_s,
            "prompt_tokens": planned.completion.usage.prompt_tokens,
            "completion_tokens": planned.completion.usage.completion_tokens})
        state = TurnState(message=message, profile=profile, shown=tuple(shown), k=k)
        try:
            done = self.executor.run(planned.steps, state, deadline)
        except (ToolFailed, ToolTimeout) as e:
            failed = trace.model_copy(update={"calls": e.calls})
            step: AgentDegradedStep = "deadline" if time.monotonic() >= deadline else "tool"
            return self._fallback(profile, k, failed, step, e, start)
        end = done.state
        trace = trace.model_copy(update={"calls": done.calls,
                                         "repairs": [*trace.repairs, *end.repairs]})
        problems = gate(end.items, self.index, end.profile, end.limits)
        if problems:
            return self._fallback(profile, k, trace, "gate", "; ".join(problems[:3]), start)
        if not end.items or end.result is None:
            return self._fallback(profile, k, trace, "empty",
                                  "no catalog item keeps every limit of the plan", start)
        trace = trace.model_copy(update={"latency_s": round(time.perf_counter() - start, 4)})
        return AgentOutcome(end.items, end.profile, end.result, trace, list(end.seeds),
                            dict(end.facts), list(end.result.notes))

    def _plan(self, message: str, profile: PreferenceProfile, shown: Sequence[ShownItem],
              deadline: float) -> Planned:
        budget = min(self.plan_budget_s, deadline - time.monotonic())
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-plan")
        try:
            future = pool.submit(self.planner.plan, message, profile, shown)
            try:
                return future.result(timeout=budget)
            except FutureTimeout:
                raise TimeoutError(f"no plan within {budget:.1f} s") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _fallback(self, profile: PreferenceProfile, k: int, trace: AgentTrace,
                  step: AgentDegradedStep, error: Exception | str,
                  start: float) -> AgentOutcome:
        """The rules path's answer for the profile, marked degraded at `step`."""
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        result = self.engine.recommend(profile, k)
        trace = trace.model_copy(update={
            "degraded": True, "degraded_step": step, "degraded_reason": reason[:500],
            "latency_s": round(time.perf_counter() - start, 4)})
        note = f"the agent failed at its {step} step ({reason[:200]}); the rules' list is shown"
        return AgentOutcome(result.items, profile, result, trace, notes=[note, *result.notes])


def gate(items: Sequence[RankedItem], index: CatalogIndex, profile: PreferenceProfile,
         limits: Limits) -> list[str]:
    """Why this list may not be shown (empty: it may): an item outside the catalog, a
    duplicate, an item the user named, or one breaking a limit of the profile or plan."""
    problems: list[str] = []
    seen: set[str] = set()
    for ranked in items:
        item = index.items.get(ranked.item_id)
        if item is None:
            problems.append(f"{ranked.item_id!r} is not in the catalog")
            continue
        if ranked.item_id in seen:
            problems.append(f"{item.title!r} is shown twice")
        seen.add(ranked.item_id)
        for problem in violations(item, profile) + limits.problems(item):
            problems.append(f"{item.title!r} {problem}")
    return problems

