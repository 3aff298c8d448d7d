"""A scripted LLM at the LLMClient boundary, for unit tests of parsing and repair only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recagent.errors import TransportError
from recagent.types import Completion, Usage

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
