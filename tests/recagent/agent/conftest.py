"""A small catalog with list-valued attributes (stars, directors, genres) in a real
embedded Chroma, and an Agent over it whose LLM is scripted at the client boundary."""

from __future__ import annotations

import pytest

from recagent.agent.agent import Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.chat.session import ChatSession
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import Item
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient
from tests.recagent.agent.plans import ROWS, Make, movie


@pytest.fixture(scope="session")
def items() -> list[Item]:
    return [movie(r) for r in ROWS.strip().splitlines()]


@pytest.fixture(scope="session")
def store(embedder, items: list[Item], tmp_path_factory: pytest.TempPathFactory  # type: ignore[no-untyped-def]
          ) -> CatalogStore:
    s = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("agent") / "chroma")
    s.ingest(items)
    return s


@pytest.fixture(scope="session")
def index(store: CatalogStore) -> CatalogIndex:
    return CatalogIndex.load(store)




@pytest.fixture
def make_session(store: CatalogStore, index: CatalogIndex) -> Make:
    """A chat session whose agent's planner answers with the given plans, in order."""

    def make(*plans: str | Exception, k: int = 3, **agent_args: object) -> ChatSession:
        client = ScriptedClient(*plans)
        recommender = Recommender(store, SemanticRetriever(store), None)
        agent = Agent(client, PromptLibrary(), ProfileRecommender(recommender), index,
                      **agent_args)  # type: ignore[arg-type]
        session = ChatSession(recommender, client, PromptLibrary(), k=k, agent=agent)
        session.client_script = client  # type: ignore[attr-defined]
        return session

    return make
