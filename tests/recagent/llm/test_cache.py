"""The SQLite response cache in front of an LLMClient."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recagent.errors import TransportError
from recagent.llm.cache import CachingClient
from tests.fakes import ScriptedClient

A = [{"role": "user", "content": "rank these"}]
B = [{"role": "user", "content": "rank those"}]
SCHEMA = {"type": "object"}


def test_a_second_run_makes_no_inner_calls(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first = ScriptedClient("one", "two")
    with CachingClient(first, path) as cache:
        assert cache.complete(A, schema=SCHEMA).text == "one"
        assert cache.complete(B, schema=SCHEMA).text == "two"
        assert cache.complete(A, schema=SCHEMA).text == "one"
        assert (cache.stats.hits, cache.stats.misses) == (1, 2)
    assert len(first.requests) == 2

    second = ScriptedClient()  # any call would raise "script exhausted"
    with CachingClient(second, path) as cache:
        got = [cache.complete(m, schema=SCHEMA) for m in (A, B)]
        assert [c.text for c in got] == ["one", "two"]
        assert got[0].usage.prompt_tokens == 100  # the stored usage comes back unchanged
        assert (cache.stats.hits, cache.stats.misses) == (2, 0)
    assert second.requests == []


@pytest.mark.parametrize("change", [
    {"schema": None}, {"temperature": 0.7}, {"max_tokens": 100}, {"seed": 1},
    {"top_logprobs": 5},
])
def test_every_sampling_parameter_is_part_of_the_key(tmp_path: Path, change: dict) -> None:
    base = {"schema": SCHEMA, "temperature": 0.0, "max_tokens": 512, "seed": 0,
            "top_logprobs": 0}
    inner = ScriptedClient("first", "second")
    with CachingClient(inner, tmp_path / "c.sqlite") as cache:
        cache.complete(A, **base)
        assert cache.complete(A, **{**base, **change}).text == "second"
    assert len(inner.requests) == 2


def test_the_model_name_is_part_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CachingClient(ScriptedClient("from scripted"), path) as cache:
        cache.complete(A)
    other = ScriptedClient("from other")
    other.model = "other-model"
    with CachingClient(other, path) as cache:
        assert cache.complete(A).text == "from other"


def test_failures_are_not_cached(tmp_path: Path) -> None:
    inner = ScriptedClient(TransportError("down"), "fine")
    with CachingClient(inner, tmp_path / "c.sqlite") as cache:
        with pytest.raises(TransportError):
            cache.complete(A)
        assert cache.complete(A).text == "fine"
    assert len(inner.requests) == 2


def test_threads_and_two_clients_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    prompts = [[{"role": "user", "content": f"q{n}"}] for n in range(16)]
    echo = ScriptedClient(*[lambda m: m[0]["content"].upper()] * 64)
    with CachingClient(echo, path) as one, CachingClient(echo, path) as two, \
            ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda n: (one if n % 2 else two).complete(prompts[n % 16]).text,
                              range(64)))
    assert texts == [f"Q{n % 16}" for n in range(64)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 16
