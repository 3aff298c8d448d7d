"""The planner: one LLM call per turn, its answer constrained by the plan's JSON schema.

No re-ask: one call per turn is the budget. An answer that is no plan at all fails the
turn (the rules path answers, degraded at step "plan"); a plan with bad steps is repaired
by `check_plan`, and the repairs are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recagent.agent.plan import check_plan, parse_plan, plan_schema
from recagent.agent.types import PlanRepair, Step
from recagent.chat.profile import describe
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.types import Completion, PreferenceProfile, ShownItem

PLAN_TEMPLATE = "agent_plan"
PLAN_MAX_TOKENS = 200
"""A six-step plan with a filter fits in about 150 tokens."""


@dataclass(frozen=True)
class Planned:
    steps: list[Step]
    repairs: list[PlanRepair]
    raw: str
    completion: Completion


class Planner:
    """Renders `prompts/agent_plan.j2` for a turn and asks the model once."""

    def __init__(self, client: LLMClient, prompts: PromptLibrary, *,
                 attributes: Sequence[str], genres: Sequence[str],
                 template: str = PLAN_TEMPLATE, max_tokens: int = PLAN_MAX_TOKENS) -> None:
        self.client = client
        self.prompts = prompts
        self.attributes = list(attributes)
        self.genres = list(genres)
        self.template = template
        self.max_tokens = max_tokens
        self.schema = plan_schema(self.attributes)

    @property
    def model(self) -> str:
        return self.client.model

    def plan(self, message: str, profile: PreferenceProfile,
             shown: Sequence[ShownItem]) -> Planned:
        """The validated, repaired plan; raises PlanError (no plan) or the client's errors."""
        prompt = self.prompts.render(
            self.template, attributes=self.attributes, genres=self.genres,
            liked=[r.title for r in profile.liked][-5:], limits=describe(profile),
            shown=[s.title for s in shown][:5], message=message)
        completion = self.client.complete(prompt.messages, schema=self.schema,
                                          max_tokens=self.max_tokens, temperature=0.0, seed=0)
        steps, repairs = check_plan(parse_plan(completion.text))
        return Planned(steps, repairs, completion.text, completion)
