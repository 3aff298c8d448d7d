"""LangChain against the embedded SmolLM2-135M: real chains, real tool calls.

A chat model (langchain-openai's ChatOpenAI pointed at the embedded server) fills the
tool's arguments from a request, the tool recommends with the embedded ranker, and a
retrieval chain answers from catalog Documents. Assertions hold for any model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ML100K, ml100k_home
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from recagent.chat.profile import violations
from recagent.integrations.langchain import CatalogRetriever, format_documents, recommend_tool
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.types import Item, PreferenceProfile
from retrieval.catalog_files import load_movielens
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

pytestmark = pytest.mark.integration


class Request(BaseModel):
    """What the chat model extracts from a request: a small, bounded shape."""

    liked: list[str] = Field(max_length=3)
    constraints: str = Field(max_length=80)


@pytest.fixture(scope="module")
def server(artifact_store) -> Iterator[LocalLLMServer]:  # type: ignore[no-untyped-def]
    name, path = resolve_model("smollm2-135m", artifact_store)
    with LocalLLMServer(path, model_name=name) as running:
        yield running


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, artifact_store, embedder) -> CatalogStore:  # type: ignore[no-untyped-def]
    home: Path = ml100k_home(tmp_path_factory, artifact_store, embedder)
    return CatalogStore.open(embedder, path=home / "chroma")


@pytest.fixture(scope="module")
def catalog() -> dict[str, Item]:
    return {i.id: i for i in load_movielens(ML100K)}


@pytest.fixture(scope="module")
def chat_model(server: LocalLLMServer) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, model=server.model, api_key="not-needed",
                      temperature=0, max_tokens=200, seed=0)


@pytest.fixture(scope="module")
def tool(store: CatalogStore, server: LocalLLMServer):  # type: ignore[no-untyped-def]
    client = OpenAIClient(base_url=server.base_url, model=server.model)
    ranker = ListwiseRanker(client, PromptLibrary())
    return recommend_tool(Recommender(store, SemanticRetriever(store), ranker))


def test_tool_call_with_the_embedded_ranker(tool, catalog: dict[str, Item]) -> None:  # type: ignore[no-untyped-def]
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": tool.name, "args": {
        "liked": ["Star Wars", "Alien"], "seen": ["Aliens"], "k": 5,
        "constraints": "no horror, nothing before 1980"}})
    artifact = message.artifact
    profile = PreferenceProfile.model_validate(artifact["profile"])
    assert {r.item_id for r in profile.liked} == {"50", "183"}
    assert [r.item_id for r in profile.seen] == ["176"]
    assert len(artifact["items"]) == 5
    for item in artifact["items"]:
        assert violations(catalog[item["item_id"]], profile) == []
        assert item["explanation"].strip() and item["title"] in message.content


def test_chat_model_fills_the_tool_in_a_chain(tool, chat_model: ChatOpenAI,  # type: ignore[no-untyped-def]
                                              catalog: dict[str, Item]) -> None:
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Extract the movies the user liked and their limits as JSON."),
        ("user", "{request}"),
    ])
    chain = (prompt
             | chat_model.with_structured_output(Request, method="json_schema")
             | RunnableLambda(lambda r: {**r.model_dump(), "k": 3})
             | tool)
    text = chain.invoke({"request": "I liked Toy Story. No horror, nothing before 1990."})
    ids = re.findall(r"\[id (\d+)\]", text)
    assert len(ids) == 3 and len(set(ids)) == 3
    assert set(ids) <= set(catalog)


def test_retrieval_chain_answers_from_catalog_documents(store: CatalogStore,
                                                        chat_model: ChatOpenAI) -> None:
    retriever = CatalogRetriever(store=store, k=3, where={"genre_Horror": False})
    docs = retriever.invoke("space adventure with starships")
    assert len(docs) == 3 and not any(d.metadata["genre_Horror"] for d in docs)
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer in one sentence using only these movies:\n{context}"),
        ("user", "{question}"),
    ])
    chain = ({"context": retriever | format_documents, "question": RunnablePassthrough()}
             | prompt | chat_model.bind(max_tokens=60) | StrOutputParser())
    answer = chain.invoke("Which of these is a space adventure?")
    assert isinstance(answer, str) and answer.strip()
