"""The rows of the conversation protocol: each turns a dialogue's test turns into lists.

A row is a `DialogueRow`: given one dialogue's test turns (in order, contexts growing),
one list of item ids per turn, best first. Two ready shapes:
- `PerTurnRow`: a function of one turn (baselines, the product);
- `ChatLikeRow`: a chat-like system replayed the way a user would meet it: one session
  per dialogue, the seeker's messages sent in order, and at each test turn the list the
  session showed after the seeker's latest message. Anything with `send(message) ->
  ChatAnswer` fits (the shipped ChatSession through `ChatSessionAdapter`; an agent the
  same way: see `FACTORIES` and /work/notes/conv.md).

`FACTORIES` maps a row name (the config's `rows`) to a function of `RowParts` (the
catalog, store, title index, train data, settings) that builds the row.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from eval.agent_stats import message_record
from eval.dialogues import DialogueTurn, TitleIndex
from recagent.agent.agent import Agent
from recagent.agent.catalog import CatalogIndex
from recagent.chat.profile import violations as profile_violations
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.chat.session import ChatSession
from recagent.errors import ConfigError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import MESSAGE_MAX_CHARS, ChatTurn, Item, UserHistory
from retrieval.embeddings import l2_normalise
from retrieval.store import CatalogStore

TEXT_QUERY_CHARS = 1000
"""The text row embeds the last this many characters of the context (the newest words)."""


@dataclass
class ChatAnswer:
    """What a chat-like system showed after one message, and the constraints it was under."""

    items: list[str]
    violations: int = 0
    """Shown items that break a hard constraint the system itself holds (counted, not
    trusted: the protocol also checks the catalog and duplicates)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """What the system reports about how the answer came about (the agent: its plan per
    message, eval.agent_stats); kept in the state files."""


class ChatLike(Protocol):
    def send(self, message: str) -> ChatAnswer: ...


class DialogueRow(Protocol):
    name: str

    def dialogue(self, turns: Sequence[DialogueTurn], k: int) -> list[ChatAnswer]: ...


@dataclass
class PerTurnRow:
    name: str
    rank: Callable[[DialogueTurn, int], list[str]]

    def dialogue(self, turns: Sequence[DialogueTurn], k: int) -> list[ChatAnswer]:
        return [ChatAnswer(self.rank(t, k)) for t in turns]


@dataclass
class ChatLikeRow:
    """Replays the seeker's side of a dialogue through one fresh session per dialogue."""

    name: str
    new_session: Callable[[int], ChatLike]
    """k → a fresh session that shows k items per answer."""

    def dialogue(self, turns: Sequence[DialogueTurn], k: int) -> list[ChatAnswer]:
        session = self.new_session(k)
        sent = 0
        last = ChatAnswer([])
        out: list[ChatAnswer] = []
        for turn in turns:
            messages = turn.seeker_messages
            extras: list[dict[str, Any]] = []
            for message in messages[sent:]:
                text = message.strip()[:MESSAGE_MAX_CHARS]
                if text:
                    last = session.send(text)
                    extras += [last.extra] if last.extra else []
            sent = len(messages)
            out.append(ChatAnswer(last.items, last.violations,
                                  {"messages": extras} if extras else {}))
        return out


class ChatSessionAdapter:
    """The shipped ChatSession as a ChatLike: its list, and the items in it that break
    its own profile's hard limits (recagent.chat.profile.violations)."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def send(self, message: str) -> ChatAnswer:
        return self.answer(self.session.send(message))

    def answer(self, turn: ChatTurn) -> ChatAnswer:
        ids = [i.item_id for i in turn.items]
        items = self.session.recommender.store.get(ids)
        broken = sum(bool(profile_violations(items[i], turn.profile)) for i in ids if i in items)
        return ChatAnswer(ids, broken)


class AgentAdapter(ChatSessionAdapter):
    """A chat session with the agent: the same answer, plus each message's plan record."""

    def send(self, message: str) -> ChatAnswer:
        start = time.perf_counter()
        turn = self.session.send(message)
        answer = self.answer(turn)
        answer.extra = message_record(turn, time.perf_counter() - start)
        return answer


def agent_session(recommender: Recommender, client: LLMClient, prompts: PromptLibrary,
                  index: CatalogIndex, k: int) -> AgentAdapter:
    """A fresh agent chat session over the product's recommender (both protocols)."""
    agent = Agent(client, prompts, ProfileRecommender(recommender), index)
    return AgentAdapter(ChatSession(recommender, client, prompts, k=k, agent=agent))


@dataclass
class RowParts:
    """What the rows are built from (eval.conversation makes it)."""

    items: dict[str, Item]
    store: CatalogStore
    index: TitleIndex
    train: list[DialogueTurn]
    recommender: Callable[[int], Recommender]
    """k → the product's fitted Recommender (built once, on first use)."""
    prompts: PromptLibrary
    client: LLMClient | None = None
    genres: list[str] = field(default_factory=list)


def popularity(train: Iterable[DialogueTurn]) -> list[str]:
    """Items by how often the recommenders of the train dialogues named them."""
    counts = Counter(i for t in train for i in t.targets)
    return [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _fill(ranked: list[str], fallback: Sequence[str], k: int) -> list[str]:
    out = list(dict.fromkeys(ranked))[:k]
    seen = set(out)
    out += [i for i in fallback if i not in seen][: k - len(out)]
    return out


def popularity_row(parts: RowParts) -> DialogueRow:
    top = popularity(parts.train)
    return PerTurnRow("popularity", lambda turn, k: top[:k])


def comention_row(parts: RowParts) -> DialogueRow:
    """Item kNN on co-mentions: two items are neighbours when train dialogues mention (or
    recommend) both; cosine on dialogue occurrence, summed over the context's mentions."""
    by_dialogue: dict[str, set[str]] = defaultdict(set)
    for t in parts.train:
        by_dialogue[t.dialog_id] |= set(parts.index.mentions(t)) | set(t.targets)
    count: Counter[str] = Counter()
    pair: dict[str, Counter[str]] = defaultdict(Counter)
    for items in by_dialogue.values():
        count.update(items)
        for a in items:
            pair[a].update(b for b in items if b != a)
    top = popularity(parts.train)

    def rank(turn: DialogueTurn, k: int) -> list[str]:
        scores: dict[str, float] = defaultdict(float)
        for m in parts.index.mentions(turn):
            for b, n in pair.get(m, Counter()).items():
                scores[b] += n / math.sqrt(count[m] * count[b])
        ranked = [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]
        return _fill(ranked, top, k)

    return PerTurnRow("comention_knn", rank)


def text_row(parts: RowParts) -> DialogueRow:
    """The context's words embedded and compared with every item's text (title, genres,
    people, plot) by cosine: no interactions at all."""
    ids = list(parts.items)
    vectors = parts.store.vectors(ids)
    ids = [i for i in ids if i in vectors]
    matrix = np.stack([vectors[i] for i in ids])

    def rank(turn: DialogueTurn, k: int) -> list[str]:
        text = " ".join(turn.context)[-TEXT_QUERY_CHARS:]
        query = l2_normalise(np.asarray(parts.store.embedder.embed([text])[0],
                                        dtype=np.float32))
        sims = matrix @ query
        best = np.argsort(-sims, kind="stable")[:k]
        return [ids[n] for n in best]

    return PerTurnRow("text", rank)


def product_row(parts: RowParts) -> DialogueRow:
    """The product: the context's mentions (resolved to catalog items) as a liked history,
    then its fitted retrieval and reranking (`Recommender.recommend`). A turn with no
    mention has no history to start from: the product's answer is popularity then."""
    top = popularity(parts.train)

    def rank(turn: DialogueTurn, k: int) -> list[str]:
        mentions = parts.index.mentions(turn)
        if not mentions:
            return top[:k]
        rec = parts.recommender(k).recommend(UserHistory.from_ids(mentions), k=k)
        return [i.item_id for i in rec.items]

    return PerTurnRow("product", rank)


def _chat(parts: RowParts, name: str, client: LLMClient | None) -> DialogueRow:
    def new(k: int) -> ChatLike:
        return ChatSessionAdapter(ChatSession(parts.recommender(k), client, parts.prompts,
                                              k=k, genres=parts.genres or None))
    return ChatLikeRow(name, new)


def chat_row(parts: RowParts) -> DialogueRow:
    """The chat session as it ships, rules only (no LLM reading the messages)."""
    return _chat(parts, "chat", None)


def chat_llm_row(parts: RowParts) -> DialogueRow:
    """The chat session with the configured LLM reading each message (plus the rules)."""
    if parts.client is None:
        raise ConfigError("the chat_llm row needs an [llm] table")
    return _chat(parts, "chat_llm", parts.client)


def agent_row(parts: RowParts) -> DialogueRow:
    """The chat session with the agent planning each message ([llm] plans)."""
    if parts.client is None:
        raise ConfigError("the agent row needs an [llm] table")
    client, index = parts.client, CatalogIndex(list(parts.items.values()))
    return ChatLikeRow("agent", lambda k: agent_session(parts.recommender(k), client,
                                                        parts.prompts, index, k))


FACTORIES: dict[str, Callable[[RowParts], DialogueRow]] = {
    "popularity": popularity_row,
    "comention_knn": comention_row,
    "text": text_row,
    "product": product_row,
    "chat": chat_row,
    "chat_llm": chat_llm_row,
    "agent": agent_row,
}
"""Row name → builder. A new row (e.g. an agent) is one entry here and one name in
ConversationRowName (eval/conversation_config.py)."""
LLM_ROWS = frozenset({"chat_llm", "agent"})

