"""OpenAIClient against a real HTTP server on loopback that misbehaves on demand."""

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import ScriptedClient
from faultserver import FAULTS, OK_TEXT, Fault, FaultServer, Reply, error_body, fault_server

from recagent.errors import ConfigError, LLMError, RecagentError, TransportError
from recagent.llm.cache import CachingClient, request_key
from recagent.llm.client import DEADLINE_EMBEDDED_S, DEADLINE_REMOTE_S, OpenAIClient
from recagent.types import Completion
from retrieval.errors import DeadlineError

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server(dribble_interval_s=0.05) as s:
        yield s


def client(url: str, *, retries: int = 2, deadline_s: float = 30.0,
           backoff_s: float = 0.01) -> OpenAIClient:
    return OpenAIClient(base_url=url, model="m", retries=retries, backoff_s=backoff_s,
                        deadline_s=deadline_s)


def test_reply_usage_and_top_logprobs(server: FaultServer) -> None:
    out = client(server.url).complete(HI, top_logprobs=2)
    assert out.text == OK_TEXT
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (12, 3)
    assert out.top_logprobs == [{"A": -0.1, "B": -2.5}]
    assert server.requests[0]["top_logprobs"] == 2 and server.requests[0]["logprobs"] is True


def test_transient_5xx_and_429_are_retried(server: FaultServer) -> None:
    server.script("503", "429")
    out = client(server.url).complete(HI)
    assert out.text and server.count == 3


def test_persistent_5xx_becomes_transport_error_after_all_tries(server: FaultServer) -> None:
    server.script(*["500"] * 3)
    with pytest.raises(TransportError, match="3 tries") as info:
        client(server.url).complete(HI)
    assert not isinstance(info.value, DeadlineError)
    assert server.count == 3


def test_client_errors_are_not_retried(server: FaultServer) -> None:
    server.script("401")
    with pytest.raises(ConfigError, match="API key"):
        client(server.url).complete(HI)
    server.script(Reply(400, error_body("messages must not be empty")))
    with pytest.raises(LLMError, match="messages must not be empty"):
        client(server.url).complete(HI)
    assert server.count == 2


def test_json_schema_rejection_falls_back_to_json_object_once(server: FaultServer) -> None:
    server.script(Reply(400, error_body("response_format type json_schema is not supported")))
    c = client(server.url)
    schema = {"type": "object", "properties": {"ranking": {"type": "array"}}}
    c.complete(HI, schema=schema)
    c.complete([{"role": "user", "content": "again"}], schema=schema)
    formats = [r["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert server.requests[0]["response_format"]["json_schema"]["schema"] == schema


def test_unreachable_server_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        client("http://127.0.0.1:9/v1").complete(HI)


# Every fault: the right recagent error (or an answer), the right number of tries.

EXPECTED: dict[str, tuple[type[Exception] | None, int]] = {
    # fault: (what complete raises, None for a Completion; requests made with retries=2)
    "ok": (None, 1),
    "500": (TransportError, 3),
    "503": (TransportError, 3),
    "429": (TransportError, 3),
    "close": (TransportError, 3),
    "cut": (TransportError, 3),
    "400": (LLMError, 1),
    "401": (ConfigError, 1),
    "404": (ConfigError, 1),
    "not_json": (LLMError, 1),
    "truncated": (LLMError, 1),
    "no_choices": (LLMError, 1),
    "not_completion": (LLMError, 1),
    "hang": (DeadlineError, 1),
    "dribble": (DeadlineError, 1),
}


def test_every_fault_is_covered() -> None:
    assert set(EXPECTED) == set(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_maps_to_a_recagent_error(fault: Fault) -> None:
    expected, tries = EXPECTED[fault]
    deadline_s = 2.0 if expected is DeadlineError else 30.0
    with fault_server(fault, dribble_interval_s=0.05) as server:
        try:
            out = client(server.url, deadline_s=deadline_s).complete(HI)
        except Exception as e:
            assert expected is not None, f"{fault}: unexpected {e!r}"
            assert isinstance(e, RecagentError), f"{fault}: a foreign {type(e).__name__}"
            assert type(e) is expected, f"{fault}: {type(e).__name__}, not {expected.__name__}"
            assert str(e)
        else:
            assert expected is None and isinstance(out, Completion)
        assert server.wait_for(tries) == tries


@pytest.mark.parametrize("fault", ["not_json", "truncated", "no_choices", "not_completion"])
def test_a_malformed_body_is_quoted_and_chained(server: FaultServer, fault: Fault) -> None:
    server.script(fault)
    with pytest.raises(LLMError) as info:
        client(server.url).complete(HI)
    message = str(info.value)
    assert {"not_json": "Gateway warming up", "truncated": '{"id": "x"',
            "no_choices": "no choices", "not_completion": "no completion"}[fault] in message
    assert type(info.value) is LLMError


def test_a_long_body_is_truncated_in_the_message(server: FaultServer) -> None:
    server.script(Reply(200, b"x" * 10_000, "text/plain"))
    with pytest.raises(LLMError, match=r"\(10000 characters\)") as info:
        client(server.url).complete(HI)
    assert len(str(info.value)) < 1_000


def test_a_never_answering_server_is_cut_at_the_deadline(server: FaultServer) -> None:
    server.default = "hang"
    with pytest.raises(DeadlineError, match=r"within the 1 s deadline \(1 try"):
        client(server.url, retries=3, deadline_s=1.0).complete(HI)
    assert server.wait_for(1) == 1  # the one try used the whole budget: no retry after it


def test_a_dribbling_server_is_cut_at_the_deadline(server: FaultServer) -> None:
    server.default = "dribble"  # ~700 bytes at one per 50 ms: half a minute
    with pytest.raises(DeadlineError, match=r"\(1 try"):
        client(server.url, retries=3, deadline_s=1.0).complete(HI)
    assert server.wait_for(1) == 1
    # the abandoned try does not read on: it hangs up long before the body would end
    assert server.wait_for_disconnects(1) == 1


def test_no_retry_starts_when_its_backoff_would_pass_the_deadline(server: FaultServer) -> None:
    server.default = "500"
    # the first wait (backoff_s * 2**0 = 5 s) ends after the 2 s deadline: stop at once
    with pytest.raises(DeadlineError, match="1 try"):
        client(server.url, retries=3, backoff_s=5.0, deadline_s=2.0).complete(HI)
    assert server.wait_for(1) == 1


def test_the_deadline_covers_the_json_object_fallback(server: FaultServer) -> None:
    server.script(Reply(400, error_body("response_format json_schema is not supported")), "hang")
    c = client(server.url, deadline_s=2.0)
    with pytest.raises(DeadlineError):
        c.complete(HI, schema={"type": "object"})
    assert server.wait_for(2) == 2
    assert c.structured_mode == "json_object"


def test_a_deadline_error_is_a_transport_error() -> None:
    assert issubclass(DeadlineError, TransportError)
    assert 0 < DEADLINE_REMOTE_S < DEADLINE_EMBEDDED_S
    assert OpenAIClient(base_url="http://127.0.0.1:9/v1", model="m").deadline_s \
        == DEADLINE_REMOTE_S


@pytest.mark.parametrize("bad", [{"deadline_s": 0}, {"timeout_s": -1.0}, {"retries": -1}])
def test_nonsense_limits_are_a_config_error(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        OpenAIClient(base_url="http://127.0.0.1:9/v1", model="m", **bad)  # type: ignore[arg-type]


# The response cache in front of the client: the same errors, never a foreign one.

def test_errors_pass_the_cache_and_are_not_stored(server: FaultServer, tmp_path: Path) -> None:
    server.script("not_json", "ok")
    with CachingClient(client(server.url), tmp_path / "c.sqlite") as cache:
        with pytest.raises(LLMError):
            cache.complete(HI)
        assert cache.complete(HI).text == OK_TEXT
        assert cache.complete(HI).text == OK_TEXT
        assert (cache.stats.hits, cache.stats.misses, server.count) == (1, 2, 2)


def test_an_unreadable_stored_answer_is_a_miss_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    key = request_key("scripted", HI, schema=None, max_tokens=512, temperature=0.0,
                      top_logprobs=0, seed=0)
    with CachingClient(ScriptedClient("fresh"), path) as cache:
        cache._db.execute("INSERT INTO completions VALUES (?, 'scripted', '{\"no\": 1}', 0)",
                          (key,))
        assert cache.complete(HI).text == "fresh"
        assert cache.complete(HI).text == "fresh"
        assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_a_broken_cache_file_is_a_config_error(tmp_path: Path) -> None:
    cache = CachingClient(ScriptedClient("x"), tmp_path / "c.sqlite")
    cache._db.execute("DROP TABLE completions")
    with pytest.raises(ConfigError, match="cannot be read") as info:
        cache.complete(HI)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    cache.close()
