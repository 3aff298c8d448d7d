"""The agent with the real embedded SmolLM2-135M planning over a hand-made catalog: what
ever it plans, no hard constraint the user stated is ever broken, nothing outside the
catalog or already named is shown, and every plan run ends with recommend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from recagent.agent.agent import Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.chat.session import ChatSession
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import ChatTurn, Item
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

pytestmark = pytest.mark.integration

Rule = Callable[[Item], bool]

CASES: list[tuple[str, Rule]] = [
    ("anything with Don Cheadle? but no drama",
     lambda i: "Drama" not in str(i.metadata["genres"])),
    ("I loved Alien. Something like it, but no horror please",
     lambda i: "Horror" not in str(i.metadata["genres"])),
    ("a Tom Hanks comedy, nothing before 1990",
     lambda i: int(i.metadata["year"]) >= 1990),  # type: ignore[call-overload]
    ("Ridley Scott sci-fi but nothing after 2000 and no horror",
     lambda i: int(i.metadata["year"]) <= 2000  # type: ignore[call-overload]
     and "Horror" not in str(i.metadata["genres"])),
]


@pytest.fixture(scope="module")
def llm(artifact_store) -> Iterator[OpenAIClient]:  # type: ignore[no-untyped-def]
    name, path = resolve_model("smollm2-135m", artifact_store)
    with LocalLLMServer(path, model_name=name) as server:
        yield OpenAIClient(base_url=server.base_url, model=server.model, timeout_s=None)


@pytest.mark.parametrize(("message", "rule"), CASES, ids=[c[0][:30] for c in CASES])
def test_stated_limits_hold_whatever_the_model_plans(
        llm: OpenAIClient, store: CatalogStore, index: CatalogIndex, message: str,
        rule: Rule) -> None:
    recommender = Recommender(store, SemanticRetriever(store), None)
    agent = Agent(llm, PromptLibrary(), ProfileRecommender(recommender), index)
    session = ChatSession(recommender, llm, PromptLibrary(), k=4, agent=agent)
    turn: ChatTurn = session.send(message)
    assert turn.agent is not None and turn.agent.model
    assert turn.items, "the rules path answers when the plan finds nothing"
    ids = [i.item_id for i in turn.items]
    assert len(ids) == len(set(ids)) and set(ids) <= set(index.items)
    assert not set(ids) & turn.profile.excluded_ids
    for item_id in ids:
        assert rule(index.items[item_id]), (message, index.items[item_id].title,
                                            turn.agent.raw_plan)
    if turn.agent.degraded:
        assert turn.agent.degraded_step and turn.agent.degraded_reason
    else:
        assert turn.agent.plan[-1].tool in ("recommend", "explain")
        assert [c.tool for c in turn.agent.calls] == [s.tool for s in turn.agent.plan]
