"""One meaning of degraded (issue 28, probe case 7): any LLM step the configuration asked
for that failed marks the answer degraded with the step and the reason kind, whatever the
server did. The LLM is the loopback fault server reached by the real OpenAIClient."""

from __future__ import annotations

import json

import pytest

from recagent.chat.session import ChatSession
from recagent.explain import Explainer
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.types import Degradation, Trace, UserHistory
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.faultserver import OK_BODY, Fault, FaultServer, Reply, fault_server
from tests.recagent.test_recommender import store as store

HISTORY = UserHistory.from_ids(["1", "4"])
FAULTS: dict[str, tuple[Fault, str]] = {
    "hang": ("hang", "deadline"), "garbage": ("not_json", "llm_error"),
    "500": ("500", "transport"), "429": ("429", "transport"),
    "truncated": ("truncated", "llm_error"), "no_choices": ("no_choices", "llm_error"),
}
"""Fault → the reason kind the client's error maps to."""


def client(server: FaultServer) -> OpenAIClient:
    return OpenAIClient(base_url=server.url, model="m", deadline_s=1.5, retries=1,
                        backoff_s=0.05)


def answer(content: str) -> Reply:
    choice = {**OK_BODY["choices"][0], "message": {"role": "assistant", "content": content}}
    return Reply(200, {**OK_BODY, "choices": [choice]})


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_failed_wording_call_degrades_the_answer(store: CatalogStore, name: str) -> None:
    fault, reason = FAULTS[name]
    with fault_server(fault, hold_s=5.0) as server:
        explainer = Explainer(client(server), PromptLibrary())
        rec = Recommender(store, SemanticRetriever(store), None, n_candidates=5,
                          explainer=explainer)
        out = rec.recommend(HISTORY, k=3)
    assert out.degraded and out.trace.degraded_codes == [f"explain:{reason}"]
    assert len(out.items) == 3 and all(i.explanation for i in out.items)
    assert out.trace.explanations[0].kind == "replaced"


def test_a_failed_ranking_degrades_both_steps(store: CatalogStore) -> None:
    with fault_server("500") as server:
        c = client(server)
        rec = Recommender(store, SemanticRetriever(store), ListwiseRanker(c, PromptLibrary()),
                          n_candidates=5, explainer=Explainer(c, PromptLibrary()))
        out = rec.recommend(HISTORY, k=3)
    assert out.trace.degraded_codes == ["rank:transport", "explain:transport"]
    assert out.trace.degraded_reason == "transport" and len(out.items) == 3


def test_usage_sums_every_call_of_the_request(store: CatalogStore) -> None:
    """The ranking answer is usable and so is the wording: 12 prompt tokens each."""
    ranking = answer(json.dumps({"ranking": [{"id": lab, "reason": "x"} for lab in "ABC"]}))
    worded = answer(json.dumps({"explanations": [
        {"id": "1", "sentence": "A tense one for you, as a fan of Alien."}]}))
    with fault_server() as server:
        server.script(ranking, worded)
        c = client(server)
        rec = Recommender(store, SemanticRetriever(store), ListwiseRanker(c, PromptLibrary()),
                          n_candidates=5, explainer=Explainer(c, PromptLibrary(), llm_items=1))
        out = rec.recommend(HISTORY, k=3)
    assert not out.degraded and out.trace.degradations == []
    assert out.trace.usage.prompt_tokens == 24 and out.trace.usage.completion_tokens == 6


def test_a_failed_extraction_degrades_the_chat_turn(store: CatalogStore) -> None:
    with fault_server("500") as server:
        c = client(server)
        rec = Recommender(store, SemanticRetriever(store), None, n_candidates=5)
        turn = ChatSession(rec, c, PromptLibrary(), k=3).send("I loved Alien")
    assert turn.degraded and turn.trace is not None
    assert turn.trace.degraded_codes == ["extract:transport"]
    assert turn.items  # the rules read the message; the list still shipped


def test_a_step_of_its_own_reports_through_degrade() -> None:
    """What the agent's plan does: one call, and the trace says which step failed."""
    from recagent.errors import ResponseError
    trace = Trace().degrade(Degradation.of("plan", ResponseError("no plan", "x", 2)))
    assert trace.degraded and trace.degraded_codes == ["plan:parse"]
    again = Trace.model_validate(trace.model_dump(mode="json"))
    assert again == trace
