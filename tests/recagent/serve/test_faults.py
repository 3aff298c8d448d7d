"""LLM faults under load: the service's LLM is a loopback fault-injecting server
(tests/faultserver.py) reached by the real OpenAIClient. Whatever it does (errors, 429,
garbage, truncated JSON, ids that are no candidates, a stall past the deadline, dying
mid-load) every answer is 200, valid and, when the LLM failed, degraded with a reason."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultserver import OK_BODY, Fault, FaultServer, Reply, fault_server

from recagent.llm.client import OpenAIClient
from recagent.serve.app import Service, create_app
from recagent.types import Item
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import build_service, check_items

pytestmark = pytest.mark.integration

HISTORY = [{"item_id": "a1", "liked": True}, {"item_id": "s1", "rating": 4}]


def answer(content: str) -> Reply:
    """A well-formed completion whose message is `content`."""
    choice = {**OK_BODY["choices"][0], "message": {"role": "assistant", "content": content}}
    return Reply(200, {**OK_BODY, "choices": [choice]})


NOT_CANDIDATES = answer(json.dumps({"ranking": [{"id": "ZZ", "reason": "x"},
                                                {"id": "item 9999", "reason": "y"}]}))
FAULTS: dict[str, Fault | Reply] = {
    "500": "500", "503": "503", "429": "429", "400": "400", "close": "close", "cut": "cut",
    "garbage": "not_json", "truncated": "truncated", "no_choices": "no_choices",
    "not_completion": "not_completion", "not_candidates": NOT_CANDIDATES,
    "prose": answer("Sure! I recommend Toy Story and Alien, they are great."),
    "stall": "hang",
}


def service_for(store: CatalogStore, server: FaultServer, db: Path) -> Service:
    client = OpenAIClient(base_url=server.url, model="m", deadline_s=2.0, retries=1,
                          backoff_s=0.05)
    return build_service(store, client, db, deadline_s=4.0, max_in_flight=4, queue_depth=64)


async def load(service: Service, n: int, concurrency: int) -> list[httpx.Response]:
    """`n` requests, `concurrency` at a time: recommendations and chat turns, mixed."""
    transport = httpx.ASGITransport(app=create_app(service))
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                 timeout=60) as client:
        sid = (await client.post("/v1/sessions", json={})).json()["session_id"]

        async def one(i: int) -> httpx.Response:
            async with gate:
                if i % 4 == 3:
                    return await client.post(f"/v1/sessions/{sid}/messages",
                                             json={"text": "I loved Toy Story, no horror"})
                return await client.post("/v1/recommend", json={"history": HISTORY, "k": 4})

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def check(responses: list[httpx.Response], catalog: dict[str, Item]) -> Counter[str]:
    """Every answer 200 (a 409 for two turns racing on one session is a refusal, never
    a loss) and valid; the degraded ones say why. Returns the reasons counted."""
    reasons: Counter[str] = Counter()
    for r in responses:
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            reasons["conflict"] += 1
            continue
        body: dict[str, Any] = r.json()
        excluded = {"a1", "s1"} if "trace" in body else {
            x["item_id"] for k in ("liked", "disliked", "seen") for x in body["profile"][k]}
        check_items(body["items"], catalog, excluded)
        assert body["items"], body
        if body["degraded"]:
            assert body["degraded_reason"], body
        reasons[body["degraded_reason"] or "ok"] += 1
    return reasons


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_llm_fault_gives_a_valid_answer(name: str, mini_store: CatalogStore,
                                             catalog: dict[str, Item], tmp_path: Path) -> None:
    with fault_server(FAULTS[name], hold_s=10) as server:
        service = service_for(mini_store, server, tmp_path / "db.sqlite")
        reasons = check(asyncio.run(load(service, 4, 4)), catalog)
        assert server.count >= 3  # the LLM was asked, and failed
    assert "ok" not in reasons, reasons  # every answer knew the LLM had failed
    expected = {"stall": {"deadline"}, "not_candidates": {"no_valid_candidate", "parse"},
                "prose": {"parse"}}.get(name, {"transport", "llm_error", "deadline"})
    assert set(reasons) - {"conflict"} <= expected, reasons
    print(f"\nfault {name}: {server.count} LLM requests failed, answers {dict(reasons)}")


def test_the_llm_server_dying_mid_load(mini_store: CatalogStore, catalog: dict[str, Item],
                                       tmp_path: Path) -> None:
    server = FaultServer("dribble", dribble_interval_s=0.002, hold_s=10).start()
    service = service_for(mini_store, server, tmp_path / "db.sqlite")

    async def scenario() -> list[httpx.Response]:
        running = asyncio.ensure_future(load(service, 16, 8))
        await asyncio.to_thread(server.wait_for, 4, 20.0)
        server.stop()  # killed with requests in flight
        return await running

    reasons = check(asyncio.run(scenario()), catalog)
    assert reasons["transport"] + reasons["deadline"] >= 1, reasons
    print(f"\nLLM killed mid-load after {server.count} requests: answers {dict(reasons)}")


def test_a_mix_of_faults_under_load(mini_store: CatalogStore, catalog: dict[str, Item],
                                    tmp_path: Path) -> None:
    mix: list[Fault | Reply] = ["500", "not_json", "ok", "truncated", "429", NOT_CANDIDATES,
                                "close", "no_choices"] * 12
    with fault_server("ok", hold_s=10) as server:
        server.script(*mix)
        service = service_for(mini_store, server, tmp_path / "db.sqlite")
        reasons = check(asyncio.run(load(service, 40, 8)), catalog)
        injected = min(server.count, len(mix))
    assert sum(reasons.values()) == 40
    print(f"\nmixed faults: {injected} scripted LLM answers, 40 requests: {dict(reasons)}")
