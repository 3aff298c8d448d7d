"""The LangChain tool and retriever over a real embedded Chroma (24 items, 4 genres).

Ranking is off here (retrieval order); tests/test_langchain_integration.py runs the
same tool and a chain against the embedded LLM.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableLambda
from pydantic import ValidationError

from recagent.integrations.langchain import (
    CatalogRetriever,
    RecommendArgs,
    format_documents,
    recommend_tool,
)
from recagent.recommender import Recommender
from recagent.types import Item
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore


@pytest.fixture(scope="module")
def store(embedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
          ) -> CatalogStore:
    s = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("lc") / "chroma")
    s.ingest(mini_items)
    return s


@pytest.fixture(scope="module")
def by_id(mini_items: list[Item]) -> dict[str, Item]:
    return {i.id: i for i in mini_items}


@pytest.fixture(scope="module")
def tool(store: CatalogStore):  # type: ignore[no-untyped-def]
    return recommend_tool(Recommender(store, SemanticRetriever(store), None, n_candidates=8))


def test_retriever_returns_documents_with_ids(store: CatalogStore) -> None:
    docs = CatalogRetriever(store=store, k=3).invoke("a spaceship crew travels to another planet")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    assert {d.metadata["genres"] for d in docs} == {"Sci-Fi"}
    assert all(d.metadata["id"] == d.id and d.metadata["title"] for d in docs)
    assert docs[0].metadata["score"] >= docs[-1].metadata["score"]


def test_retriever_filter_and_lcel_composition(store: CatalogStore) -> None:
    retriever = CatalogRetriever(store=store, k=4, where={"genre_Horror": False})
    chain = retriever | RunnableLambda(format_documents)
    text = chain.invoke("ghosts haunt a house")
    assert text.startswith("1. ") and len(text.splitlines()) == 4
    assert "Horror" not in text


def test_tool_schema_is_bounded(tool) -> None:  # type: ignore[no-untyped-def]
    schema = tool.tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == {"liked", "disliked", "seen", "constraints", "k"}
    assert tool.args_schema is RecommendArgs
    with pytest.raises(ValidationError):
        tool.invoke({"liked": ["Toy Story"], "k": 0})
    with pytest.raises(ValidationError):
        tool.invoke({"liked": ["x"] * 21})


def test_tool_call_returns_text_and_a_structured_artifact(tool, by_id) -> None:  # type: ignore[no-untyped-def]
    message = tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": {
        "liked": ["Star Wars", "s2"], "seen": ["The Martian"], "k": 3,
        "constraints": "no horror, nothing before 2003"}})
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    items = message.artifact["items"]
    assert len(items) == 3 and message.content.startswith("1. ")
    for item in items:
        meta = by_id[item["item_id"]].metadata
        assert item["item_id"] not in {"s1", "s2", "s5"}  # liked or seen
        assert not meta["genre_Horror"] and meta["year"] >= 2003
        assert item["title"] in message.content
    profile = message.artifact["profile"]
    assert [r["item_id"] for r in profile["liked"]] == ["s1", "s2"]  # title and id
    assert profile["exclude_genres"] == ["Horror"] and profile["year_min"] == 2003


def test_tool_reports_unknown_titles_and_keeps_going(tool) -> None:  # type: ignore[no-untyped-def]
    text = tool.invoke({"liked": ["Blorp Wars 3", "Toy Story"], "k": 2})
    assert "Not found in the catalog" in text and "Blorp Wars 3" in text
    assert len([line for line in text.splitlines() if line[:2] in ("1.", "2.")]) == 2


def test_tool_with_impossible_limits_says_so(tool) -> None:  # type: ignore[no-untyped-def]
    text = tool.invoke({"constraints": "only horror, nothing before 2010"})
    assert text == "No catalog item fits those limits."
