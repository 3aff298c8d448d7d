"""Agent sessions in the service (`"agent": true`): the planner's one call per message at
the client boundary (scripted), real Chroma and tools; a failed plan is a degraded answer
by the rules, reported as agent_plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from recagent.serve.app import create_app
from recagent.types import Completion, Item
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import PickingClient, build_service, check_items


class PlanningClient(PickingClient):
    """Plans with `plan` (a JSON text) when asked to plan; ranks as PickingClient does."""

    model = "planning"

    def __init__(self, plan: str) -> None:
        super().__init__()
        self.plan = plan
        self.plans = 0

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        if messages[0]["content"].startswith("You plan how"):
            self.plans += 1
            return Completion(text=self.plan)
        return super().complete(messages, **kwargs)


def client_for(store: CatalogStore, llm: PlanningClient | None, db: Path) -> TestClient:
    return TestClient(create_app(build_service(store, llm, db, agent=True)))


def test_an_agent_session_plans_each_message(mini_store: CatalogStore, tmp_path: Path,
                                             catalog: dict[str, Item]) -> None:
    llm = PlanningClient(json.dumps({"steps": [
        {"tool": "find_titles", "args": {"titles": ["Toy Story"]}},
        {"tool": "similar_to", "args": {}}, {"tool": "recommend", "args": {}}]}))
    with client_for(mini_store, llm, tmp_path / "db.sqlite") as http:
        made = http.post("/v1/sessions", json={"k": 3, "agent": True})
        assert made.status_code == 201 and made.json()["agent"] is True
        sid = made.json()["session_id"]
        view = http.post(f"/v1/sessions/{sid}/messages",
                         json={"text": "my kid watched Toy Story, no horror"}).json()
    assert llm.plans == 1 and not view["degraded"] and view["agent"]
    check_items(view["items"], catalog, {"a1"})
    assert all(catalog[i["item_id"]].metadata["genres"] != "Horror" for i in view["items"])
    assert [r["item_id"] for r in view["profile"]["liked"]] == ["a1"]


def test_a_failed_plan_answers_by_the_rules_marked(mini_store: CatalogStore, tmp_path: Path,
                                                   catalog: dict[str, Item]) -> None:
    llm = PlanningClient("I think you should watch Alien")
    with client_for(mini_store, llm, tmp_path / "db.sqlite") as http:
        sid = http.post("/v1/sessions", json={"agent": True}).json()["session_id"]
        view = http.post(f"/v1/sessions/{sid}/messages",
                         json={"text": "something romantic"}).json()
    assert view["degraded"] and view["degraded_reason"] == "agent_plan"
    check_items(view["items"], catalog, set())
    assert len(view["items"]) == 5


def test_agent_sessions_need_an_llm(mini_store: CatalogStore, tmp_path: Path) -> None:
    with client_for(mini_store, None, tmp_path / "db.sqlite") as http:
        refused = http.post("/v1/sessions", json={"agent": True})
        assert refused.status_code == 422 and "agent sessions need an LLM" in refused.text
        assert http.post("/v1/sessions", json={}).json()["agent"] is False
