"""A response cache in front of any LLMClient, so a repeated request is never paid twice.

Keyed on everything that decides the answer (model, messages, schema, sampling
parameters); stored in SQLite in WAL mode, so threads of one run and several runs at
once can share a file. Only answers are cached: a failed call is retried next time.
A stored answer that no longer reads as a Completion counts as a miss and is replaced; a
cache file SQLite cannot read or write is a ConfigError (the cache path is a setting).
Continuation scores (recagent/llm/scoring.py) are cached in the same table, under keys of
their own, when the inner client can score.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from recagent.errors import ConfigError
from recagent.llm.client import JsonSchema, LLMClient, Message
from recagent.llm.scoring import NEEDS_PROMPT_LOGPROBS, Continuations, ContinuationScorer
from recagent.types import Completion

_Answer = TypeVar("_Answer", bound=BaseModel)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int


def request_key(
    model: str, messages: list[Message], *, schema: JsonSchema | None, max_tokens: int,
    temperature: float, top_logprobs: int, seed: int | None,
) -> str:
    """A stable digest of one request: equal requests, equal keys, in any process."""
    blob = json.dumps(
        {"model": model, "messages": messages, "schema": schema, "max_tokens": max_tokens,
         "temperature": temperature, "top_logprobs": top_logprobs, "seed": seed},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def continuations_key(model: str, prefix: str, continuations: Sequence[str]) -> str:
    """A stable digest of one scoring request, never equal to a `request_key`."""
    blob = json.dumps({"kind": "continuations", "model": model, "prefix": prefix,
                       "continuations": list(continuations)},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class CachingClient:
    """An LLMClient that answers from `path` when it can and asks `inner` otherwise.

    A hit returns the stored Completion unchanged (its usage and latency are what the
    answer cost when it was made); `stats` says how many calls reached `inner`."""

    def __init__(self, inner: LLMClient, path: Path, *, busy_timeout_s: float = 60.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.inner = inner
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False,
                                   isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
        self._hits = 0
        self._misses = 0

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses)

    def complete(
        self,
        messages: list[Message],
        *,
        schema: JsonSchema | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        top_logprobs: int = 0,
        seed: int | None = 0,
    ) -> Completion:
        key = request_key(self.inner.model, messages, schema=schema, max_tokens=max_tokens,
                          temperature=temperature, top_logprobs=top_logprobs, seed=seed)
        return self._cached(key, Completion, lambda: self.inner.complete(
            messages, schema=schema, max_tokens=max_tokens, temperature=temperature,
            top_logprobs=top_logprobs, seed=seed,
        ))

    def continuation_logprobs(self, prefix: str, continuations: Sequence[str]) -> Continuations:
        """The inner client's continuation scores, cached; a ConfigError if it cannot score."""
        inner = self.inner
        if not isinstance(inner, ContinuationScorer):
            raise ConfigError(f"{NEEDS_PROMPT_LOGPROBS}; {type(inner).__name__} cannot score")
        key = continuations_key(inner.model, prefix, continuations)
        return self._cached(key, Continuations,
                            lambda: inner.continuation_logprobs(prefix, continuations))

    def _cached(self, key: str, kind: type[_Answer], call: Callable[[], _Answer]) -> _Answer:
        """The stored answer under `key`, else `call()`'s, stored."""
        stale = False
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT completion FROM completions WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as e:
                raise ConfigError(f"the response cache {self.path} cannot be read: {e}") from e
            if row is not None:
                try:
                    hit = kind.model_validate_json(row[0])
                except ValidationError:
                    stale = True  # written by another version: ask again, then replace it
                else:
                    self._hits += 1
                    return hit
            self._misses += 1
        # The call itself runs outside the lock: concurrent misses reach the server together.
        answer = call()
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT OR {'REPLACE' if stale else 'IGNORE'} INTO completions "
                    "(key, model, completion, created) VALUES (?, ?, ?, ?)",
                    (key, self.inner.model, answer.model_dump_json(), time.time()),
                )
            except sqlite3.Error as e:
                raise ConfigError(f"the response cache {self.path} cannot store an answer "
                                  f"(the answer is lost): {e}") from e
        return answer

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CachingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
