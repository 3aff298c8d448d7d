"""recagent inside LangChain: the recommender as a tool, the catalog as a retriever.

Needs the optional extra (`pip install 'recagent[langchain]'`). The tool takes liked
titles or ids plus limits in plain words ("no horror, nothing before 1990"), which
go through the same rules, filters and final checks as a chat turn: whatever an
agent passes, the tool returns only catalog items within the limits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from recagent.agent.agent import Agent, gate
from recagent.agent.tools import TurnState
from recagent.agent.types import ARGS, ToolName
from recagent.chat.lookup import TitleResolver, catalog_genres
from recagent.chat.parse import parse_message
from recagent.chat.profile import merge
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.recommender import Recommender
from recagent.types import ItemRef, PreferenceProfile, ProfileDelta
from retrieval.store import CatalogStore

Phrase = str

TOOL_DESCRIPTION = (
    "Recommend movies from the catalog. Give titles (or catalog ids) the user liked, "
    "disliked or has already seen, and limits in plain words such as 'no horror, nothing "
    "before 1990'. Returns a ranked list with a reason for each item."
)


class RecommendArgs(BaseModel):
    """The tool's arguments; their JSON schema is what a LangChain agent sees."""

    model_config = ConfigDict(extra="forbid")
    liked: list[Phrase] = Field(default_factory=list, max_length=20,
                                description="titles or catalog ids the user liked")
    disliked: list[Phrase] = Field(default_factory=list, max_length=20,
                                   description="titles or catalog ids the user disliked")
    seen: list[Phrase] = Field(default_factory=list, max_length=50,
                               description="titles or catalog ids the user has already seen")
    constraints: str = Field("", max_length=500,
                             description="limits in plain words, e.g. 'no horror, after 1990'")
    k: int = Field(5, ge=1, le=20, description="how many items to return")


def recommend_tool(recommender: Recommender, *, name: str = "recommend_movies",
                   genres: Sequence[str] | None = None) -> StructuredTool:
    """A StructuredTool over `recommender`; its artifact carries the structured result."""
    engine = ProfileRecommender(recommender)
    resolver = TitleResolver(recommender.store)
    vocabulary = list(genres) if genres is not None else catalog_genres(recommender.store)

    def recommend(liked: Sequence[str] = (), disliked: Sequence[str] = (),
                  seen: Sequence[str] = (), constraints: str = "", k: int = 5
                  ) -> tuple[str, dict[str, Any]]:
        named = {"liked": liked, "disliked": disliked, "seen": seen}
        refs: dict[str, list[ItemRef]] = {kind: [] for kind in named}
        unresolved: list[str] = []
        for kind, phrases in named.items():
            for phrase in phrases:
                found, missing = resolver.resolve(phrase[:200], allow_ids=True)
                refs[kind] += found
                unresolved += missing
        profile = merge(PreferenceProfile(), ProfileDelta(), **refs)
        rules = parse_message(constraints, vocabulary).delta if constraints.strip() else None
        if rules is not None:
            more = {kind: [r for p in getattr(rules, kind) for r in
                           resolver.resolve(p, allow_ids=True)[0]] for kind in named}
            profile = merge(profile, rules, **more)
        result = engine.recommend(profile, k)
        items = [{"item_id": i.item_id, "title": i.title, "explanation": i.explanation}
                 for i in result.items]
        artifact = {"items": items, "unresolved": unresolved,
                    "profile": profile.model_dump(mode="json"),
                    "degraded": result.degraded, "notes": result.notes}
        return _as_text(items, unresolved), artifact

    return StructuredTool.from_function(
        func=recommend, name=name, description=TOOL_DESCRIPTION, args_schema=RecommendArgs,
        response_format="content_and_artifact",
    )


AGENT_TOOL_DESCRIPTIONS: dict[ToolName, str] = {
    "find_titles": "Find the titles the user named in the movie catalog; they guide "
                   "similar_to and recommend, and are never recommended back.",
    "facts": "Details (genres, people, year) of named titles, or of the titles found.",
    "filter": "Keep only catalog movies with (include) or without (exclude) attribute "
              "values, and within years. Hard limits: never broken by later steps.",
    "similar_to": "Narrow to movies like named titles (or the ones found): what people who "
                  "liked them also liked, then closeness in content.",
    "recommend": "Rank the narrowed movies for the user and return the list with reasons. "
                 "Call it last.",
    "explain": "The reasons for the ranked movies.",
}


class AgentToolkit:
    """recagent's agent tools for a user's own LangChain agent: the same tools, over one
    buffer of item ids kept here between calls, grounded in the catalog (not in a message:
    `reset` with the user's message to ground in it too). Whatever the agent passes, what
    `recommend` returns holds only catalog items within every limit set."""

    def __init__(self, agent: Agent, *, k: int = 5,
                 profile: PreferenceProfile | None = None) -> None:
        self.agent = agent
        self.k = k
        self.state = TurnState(message=None, profile=profile or PreferenceProfile(),
                               shown=(), k=k)
        self.calls = 0
        self.tools = [self._tool(name) for name in AGENT_TOOL_DESCRIPTIONS]

    def reset(self, message: str | None = None,
              profile: PreferenceProfile | None = None) -> None:
        """A fresh buffer for the next request."""
        self.state = TurnState(message=message, profile=profile or self.state.profile,
                               shown=(), k=self.k)

    def _tool(self, name: ToolName) -> StructuredTool:
        run = self.agent.executor.tools[name]
        schema = ARGS[name]

        def call(**kwargs: Any) -> tuple[str, dict[str, Any]]:
            state, said = run(self.state, schema.model_validate(kwargs), self.calls)
            self.calls += 1
            items = [{"item_id": i.item_id, "title": i.title, "explanation": i.explanation}
                     for i in state.items]
            if name == "recommend" and gate(state.items, self.agent.index, state.profile,
                                            state.limits):
                items, said = [], "the list broke a limit and is not shown"
            self.state = state
            artifact = {"result": said, "buffer": list(state.buffer or ())[:50],
                        "found": list(state.seeds), "items": items,
                        "repairs": [r.detail for r in state.repairs]}
            text = _as_text(items, []) if name in ("recommend", "explain") else said
            return text, artifact

        return StructuredTool.from_function(
            func=call, name=name, description=AGENT_TOOL_DESCRIPTIONS[name],
            args_schema=schema, response_format="content_and_artifact")


def _as_text(items: Sequence[dict[str, str]], unresolved: Sequence[str]) -> str:
    lines = [f"{n}. {i['title']} [id {i['item_id']}]: {i['explanation']}"
             for n, i in enumerate(items, 1)] or ["No catalog item fits those limits."]
    if unresolved:
        lines.append("Not found in the catalog: " + json.dumps(list(unresolved)))
    return "\n".join(lines)


class CatalogRetriever(BaseRetriever):
    """Semantic search over the Chroma catalog, as LangChain Documents (id in metadata)."""

    store: CatalogStore
    k: int = Field(4, ge=1, le=100)
    where: dict[str, Any] | None = None
    """An optional Chroma metadata filter, e.g. {"genre_Horror": False}."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        vector = self.store.embedder.embed([query])[0]
        return [
            Document(id=item.id, page_content=item.text or item.title,
                     metadata={**item.metadata, "id": item.id, "title": item.title,
                               "score": round(score, 6)})
            for item, score, _ in self.store.query(vector, self.k, where=self.where)
        ]


def format_documents(documents: Sequence[Document]) -> str:
    """Numbered lines for a prompt: the usual `retriever | format_documents` step."""
    return "\n".join(f"{n}. {d.page_content}" for n, d in enumerate(documents, 1))
