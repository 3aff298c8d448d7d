"""The agent's tools in a user's own LangChain chain: a real langchain-core chain with a
real ChatOpenAI, whose server (the client boundary) is scripted to call the tools; the
tools run for real over a real embedded Chroma."""

from __future__ import annotations

import json
from typing import Any

import pytest
from faultserver import FaultServer, Reply
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_openai import ChatOpenAI

from recagent.agent.agent import Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.integrations.langchain import AgentToolkit
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient
from tests.recagent.agent.plans import ROWS, movie


@pytest.fixture(scope="module")
def agent(embedder, tmp_path_factory: pytest.TempPathFactory) -> Agent:  # type: ignore[no-untyped-def]
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("lcagent") / "chroma")
    store.ingest([movie(r) for r in ROWS.strip().splitlines()])
    recommender = Recommender(store, SemanticRetriever(store), None)
    return Agent(ScriptedClient(), PromptLibrary(), ProfileRecommender(recommender),
                 CatalogIndex.load(store))


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> Reply:
    """A chat completion whose assistant message calls these tools."""
    return Reply(200, {
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": f"call{n}", "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)}}
                           for n, (name, args) in enumerate(calls)]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})


def test_a_real_chain_calls_the_agent_tools_and_limits_hold(agent: Agent) -> None:
    toolkit = AgentToolkit(agent, k=3)
    by_name = {t.name: t for t in toolkit.tools}
    with FaultServer() as server:
        server.script(tool_calls(
            ("find_titles", {"titles": ["Traffic"]}),
            ("filter", {"include": [{"attribute": "star", "values": ["don cheadle"]}],
                        "exclude": [{"attribute": "genres", "values": ["Drama"]}]}),
            ("recommend", {})))
        model = ChatOpenAI(base_url=server.url, api_key="none", model="m",  # type: ignore[arg-type]
                           max_retries=0).bind_tools(toolkit.tools)

        def run(message: AIMessage) -> list[ToolMessage]:
            return [by_name[c["name"]].invoke({**c, "type": "tool_call"})
                    for c in message.tool_calls]

        chain = (ChatPromptTemplate.from_messages([("human", "{request}")]) | model
                 | RunnableLambda(run))
        results = chain.invoke({"request": "Liked Traffic. Anything else with Don Cheadle, "
                                           "but no drama?"})
        sent = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert sent == {"find_titles", "facts", "filter", "similar_to", "recommend", "explain"}
    assert [r.name for r in results] == ["find_titles", "filter", "recommend"]
    items = results[-1].artifact["items"]
    assert [i["title"] for i in items] == ["Ocean's Eleven (2001)"]  # the only one left
    assert "Ocean's Eleven (2001)" in results[-1].content
    assert results[0].artifact["found"] == ["m8"]


def test_values_outside_the_catalog_never_narrow_the_buffer(agent: Agent) -> None:
    toolkit = AgentToolkit(agent, k=3)
    by_name = {t.name: t for t in toolkit.tools}
    out = by_name["filter"].invoke({"include": [{"attribute": "star",
                                                 "values": ["Nobody Atall"]}]})
    assert out == "no limit left to apply"
    ranked = by_name["recommend"].invoke({})
    assert ranked.count("\n") == 2  # three items
    toolkit.reset("something with Tom Hanks")
    by_name["filter"].invoke({"include": [{"attribute": "star", "values": ["Don Cheadle"]}]})
    assert toolkit.state.buffer is None  # not said in the message: not applied
