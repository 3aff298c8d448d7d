"""The agent built from running parts: the one place the CLI (`chat --agent`), the
service's agent sessions, eval and the Python API get it from."""

from __future__ import annotations

from recagent.agent.agent import DEADLINE_S, Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.errors import ConfigError
from recagent.wiring.product import Parts


def build_agent(parts: Parts, *, deadline_s: float = DEADLINE_S) -> Agent:
    """An Agent over the parts' recommender and LLM, with the catalog loaded once; a
    ConfigError when no LLM runs (the planner is the LLM's one call per turn)."""
    if parts.client is None:
        raise ConfigError("the agent plans each turn with an LLM, and none runs in this "
                          "configuration: leave out --no-llm (or configure [llm])")
    return Agent(parts.client, parts.prompts, ProfileRecommender(parts.recommender),
                 CatalogIndex.load(parts.store), deadline_s=deadline_s)
