"""The service over a small real catalog (the 24 mini items in an embedded Chroma), with
the LLM faked at the client boundary (unit tests) or a fault-injecting server."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from recagent.agent.agent import Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.lookup import catalog_genres
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.explain.explainer import Explainer
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.serve.app import Service, create_app
from recagent.serve.engine import Engine
from recagent.serve.limits import Admission
from recagent.serve.metrics import ServiceMetrics
from recagent.serve.sessions import SessionStore
from recagent.types import Completion, Item, Usage
from recagent.wiring import catalog_titles
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

LABEL = re.compile(r"^\[([A-Z]{1,2})\]", re.MULTILINE)
NUMBERED = re.compile(r"^(\d+)\. ", re.MULTILINE)
SENTENCES = ["A bold choice for your taste.", "A gentle pick you may enjoy.",
             "Something fresh that suits you.", "A quiet gem for your evenings.",
             "A lively story you should enjoy."]


class PickingClient:
    """A fake LLM: ranks the candidates it is shown last-first, words explanations with
    plain sentences that pass the checker, answers anything else with '{}' (unusable),
    after `delay_s`."""

    model = "picking"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        with self._lock:
            self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        prompt = messages[-1]["content"]
        labels = LABEL.findall(prompt)
        numbers = NUMBERED.findall(prompt) if '{"explanations"' in prompt else []
        text = json.dumps({"ranking": [{"id": lab, "reason": "fits"}
                                       for lab in reversed(labels)]}) if labels else json.dumps(
            {"explanations": [{"id": n, "sentence": SENTENCES[int(n) % len(SENTENCES)]}
                              for n in numbers]}) if numbers else "{}"
        return Completion(text=text, usage=Usage(prompt_tokens=50, completion_tokens=10))


@pytest.fixture(scope="session")
def mini_store(embedder, mini_items: list[Item],  # type: ignore[no-untyped-def]
               tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("serve") / "chroma")
    store.ingest(mini_items)
    return store


@pytest.fixture(scope="session")
def catalog(mini_items: list[Item]) -> dict[str, Item]:
    return {i.id: i for i in mini_items}


def build_service(store: CatalogStore, client: LLMClient | None, db: Path, *,
                  n_candidates: int = 10, agent: bool = False, **options: Any) -> Service:
    """The service as `open_service` assembles it, from explicit parts (`agent`: agent
    sessions are offered when a client is given)."""
    prompts = PromptLibrary()
    ranker = ListwiseRanker(client, prompts) if client is not None else None
    explainer = Explainer(client, prompts, genres=catalog_genres(store),
                          titles=catalog_titles(store), llm_items=1)
    recommender = Recommender(store, SemanticRetriever(store), ranker,
                              n_candidates=n_candidates, explainer=explainer)
    sessions = SessionStore(f"sqlite:///{db}")
    admission = Admission(max_in_flight=options.pop("max_in_flight", 4),
                          queue_depth=options.pop("queue_depth", 32))
    make_agent = (lambda: Agent(client, prompts, ProfileRecommender(recommender),
                                CatalogIndex.load(store))) if agent and client else None
    engine = Engine(recommender, client, prompts, sessions, agent=make_agent)
    return Service(engine=engine, sessions=sessions,
                   admission=admission, metrics=ServiceMetrics(admission), **options)


MakeApp = Callable[..., TestClient]


@pytest.fixture
def make_client(mini_store: CatalogStore, tmp_path: Path) -> Iterator[MakeApp]:
    """A TestClient over a fresh service (own database); options go to build_service."""
    made: list[TestClient] = []

    def make(client: LLMClient | None = None, **options: Any) -> TestClient:
        service = build_service(mini_store, client, tmp_path / f"db{len(made)}.sqlite",
                                **options)
        test_client = TestClient(create_app(service))
        test_client.__enter__()
        made.append(test_client)
        return test_client

    yield make
    for c in made:
        c.__exit__(None, None, None)


def check_items(items: list[dict[str, Any]], catalog: dict[str, Item],
                excluded: set[str]) -> None:
    """The invariants of every list: catalog items, none excluded, no duplicates,
    explained."""
    ids = [i["item_id"] for i in items]
    assert len(ids) == len(set(ids)), ids
    assert set(ids) <= set(catalog), ids
    assert not set(ids) & excluded, (ids, excluded)
    assert all(i["explanation"].strip() for i in items)
