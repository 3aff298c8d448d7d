"""A scripted LLM at the LLMClient boundary, for unit tests of parsing and repair only, and
the tiny catalog those tests rank (movies, candidates, a one-item history)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recagent.errors import TransportError
from recagent.types import Candidate, Completion, Interaction, Item, Usage

Reply = str | Completion | Exception | Callable[[list[dict[str, str]]], str]


class ScriptedClient:
    """Returns the scripted replies in order and records every request it got."""

    model = "scripted"

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        self.requests.append({"messages": messages, **kwargs})
        if not self.replies:
            raise TransportError("script exhausted")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, Completion):
            return reply
        text = reply(messages) if callable(reply) else reply
        return Completion(text=text, usage=Usage(prompt_tokens=100, completion_tokens=20),
                          latency_s=0.01)


def movie(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


def cands(*ids: int, **sources: list[float]) -> list[Candidate]:
    """Candidates for these movie ids, in order, with per-source scores if given."""
    return [Candidate(item=movie(i), rank=n, score=0.0,
                      scores_by_source={s: v[n] for s, v in sources.items()})
            for n, i in enumerate(ids)]


HISTORY = [(Interaction(item_id="100", liked=True), movie(100))]
"""One liked movie, as rankers take a history."""
