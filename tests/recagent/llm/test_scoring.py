"""Continuation scoring (recagent/llm/scoring.py) through OpenAIClient against a loopback
server that answers with vLLM-shaped /v1/completions bodies, and through the cache."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import ScriptedClient
from faultserver import FaultServer, Reply, error_body, fault_server

from recagent.errors import ConfigError, LLMError, TransportError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.cache import CachingClient
from recagent.llm.client import OpenAIClient
from recagent.llm.scoring import ContinuationScorer, parse_continuations

PREFIX = "Star Wars (1977), The Empire Strikes Back (1980),"
JEDI = " Return of the Jedi (1983)"
ALIEN = " Alien (1979)"


def tokens_of(text: str) -> list[str]:
    """Word-ish pieces, a leading space kept with its word (like a BPE's ' Return')."""
    return re.findall(r" ?[^ ]+", text)


def echoed(prompt: str, *, bos: str = "", generated: str = " and",
           value: float = -1.0) -> dict[str, Any]:
    """One choice as vLLM answers `echo=True, logprobs=0, max_tokens=1`: every prompt token
    (the first without a logprob), then the generated one; offsets count token lengths."""
    tokens = ([bos] if bos else []) + tokens_of(prompt) + [generated]
    offsets = [sum(len(t) for t in tokens[:n]) for n in range(len(tokens))]
    values: list[float | None] = [None] + [value] * (len(tokens) - 1)
    return {"text": prompt + generated, "finish_reason": "length",
            "logprobs": {"tokens": tokens, "token_logprobs": values, "text_offset": offsets,
                         "top_logprobs": [None] + [{t: value} for t in tokens[1:]]}}


def body(*choices: dict[str, Any]) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
            "choices": [{"index": n, **c} for n, c in enumerate(choices)],
            "usage": {"prompt_tokens": 42, "completion_tokens": len(choices),
                      "total_tokens": 42 + len(choices)}}


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with fault_server() as s:
        yield s


def client(url: str) -> OpenAIClient:
    return OpenAIClient(base_url=url, model="m", retries=2, backoff_s=0.01, deadline_s=30.0)


def test_sums_the_continuation_tokens_only_in_one_batched_request(server: FaultServer) -> None:
    server.script(Reply(200, body(echoed(PREFIX + JEDI, value=-0.5),
                                  echoed(PREFIX + ALIEN, value=-2.0))))
    out = client(server.url).continuation_logprobs(PREFIX, [JEDI, ALIEN])
    # " Return", " of", " the", " Jedi", " (1983)" and " Alien", " (1979)"; not " and"
    assert out.logprobs == [-2.5, -4.0] and out.tokens == [5, 2]
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (42, 2)
    assert out.latency_s > 0
    sent = server.requests[0]
    assert sent["prompt"] == [PREFIX + JEDI, PREFIX + ALIEN]
    assert sent["echo"] is True and sent["logprobs"] == 0 and sent["max_tokens"] == 1


def test_choices_are_matched_by_index_not_position() -> None:
    first, second = echoed(PREFIX + JEDI, value=-1.0), echoed(PREFIX + ALIEN, value=-3.0)
    data = body(first, second)
    data["choices"].reverse()
    out = parse_continuations(json.dumps(data), PREFIX, [JEDI, ALIEN])
    assert out.logprobs == [-5.0, -6.0]


def test_a_bos_token_before_the_prompt_shifts_the_boundary() -> None:
    data = body(echoed(PREFIX + ALIEN, bos="<s>", value=-1.5))
    assert parse_continuations(json.dumps(data), PREFIX, [ALIEN]).logprobs == [-3.0]


def test_a_token_across_the_boundary_is_left_to_the_prefix() -> None:
    choice = echoed(PREFIX + ALIEN, value=-1.0)
    lp = choice["logprobs"]  # merge " (1980)," and " Alien" into one token
    n = lp["tokens"].index(" Alien")
    lp["tokens"][n - 1:n + 1] = [lp["tokens"][n - 1] + lp["tokens"][n]]  # " (1980), Alien"
    lp["token_logprobs"][n - 1:n + 1] = [-7.0]
    lp["text_offset"][n - 1:n + 1] = [lp["text_offset"][n - 1]]
    assert "".join(lp["tokens"]).startswith(PREFIX + ALIEN)
    out = parse_continuations(json.dumps(body(choice)), PREFIX, [ALIEN])
    assert out.logprobs == [-1.0] and out.tokens == [1]  # " (1979)" only


def test_a_server_that_ignores_echo_is_a_config_error_naming_vllm(server: FaultServer) -> None:
    # what llama.cpp's server answers: the generated token only, logprobs null
    server.script(Reply(200, body({"text": " and", "logprobs": None})))
    with pytest.raises(ConfigError, match=r"prompt logprobs.*such as vLLM"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])
    generated_only = {"text": " and", "logprobs": {"tokens": [" and"], "token_logprobs": [-0.2],
                                                   "text_offset": [0]}}
    server.script(Reply(200, body(generated_only)))
    with pytest.raises(ConfigError, match="do not spell the prompt"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])


def test_a_missing_logprob_in_the_continuation_is_an_llm_error(server: FaultServer) -> None:
    choice = echoed(PREFIX + ALIEN)
    choice["logprobs"]["token_logprobs"][-2] = None  # " (1979)"
    server.script(Reply(200, body(choice)))
    with pytest.raises(LLMError, match="no finite logprob"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])


@pytest.mark.parametrize("data", [
    {"choices": []},
    {"object": "text_completion"},
    {"choices": [{"index": 5, "logprobs": None}]},
    [1, 2],
])
def test_a_malformed_answer_is_an_llm_error(server: FaultServer, data: Any) -> None:
    server.script(Reply(200, data))
    with pytest.raises(LLMError) as caught:
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])
    assert not isinstance(caught.value, ConfigError)


def test_not_json_is_an_llm_error_quoting_the_body(server: FaultServer) -> None:
    server.script("not_json")
    with pytest.raises(LLMError, match="Gateway warming up"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])


def test_transient_failures_are_retried_and_others_mapped(server: FaultServer) -> None:
    server.script("503", "close", Reply(200, body(echoed(PREFIX + ALIEN))))
    assert client(server.url).continuation_logprobs(PREFIX, [ALIEN]).logprobs == [-2.0]
    assert server.count == 3
    server.script("500", "500", "500")
    with pytest.raises(TransportError, match="after 3 tries"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])
    server.script(Reply(400, error_body("prompt too long")))
    with pytest.raises(LLMError, match="prompt too long"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])
    server.script("404")
    with pytest.raises(ConfigError, match="not found"):
        client(server.url).continuation_logprobs(PREFIX, [ALIEN])


@pytest.mark.parametrize(("prefix", "continuations"), [
    ("", [ALIEN]), (PREFIX, []), (PREFIX, [" "]), (PREFIX, ALIEN)])
def test_an_unscorable_request_is_a_config_error_before_any_call(
        server: FaultServer, prefix: str, continuations: Any) -> None:
    with pytest.raises(ConfigError):
        client(server.url).continuation_logprobs(prefix, continuations)
    assert server.count == 0


def test_the_cache_forwards_and_stores_scores(server: FaultServer, tmp_path: Path) -> None:
    server.script(Reply(200, body(echoed(PREFIX + ALIEN))),
                  Reply(200, body(echoed(PREFIX + JEDI, value=-0.1))))
    with CachingClient(client(server.url), tmp_path / "c.sqlite") as cache:
        assert isinstance(cache, ContinuationScorer)
        first = cache.continuation_logprobs(PREFIX, [ALIEN])
        again = cache.continuation_logprobs(PREFIX, [ALIEN])
        other = cache.continuation_logprobs(PREFIX, [JEDI])  # another key
        assert first == again and first.logprobs == [-2.0]
        assert other.logprobs == pytest.approx([-0.5])
        assert server.count == 2 and (cache.stats.hits, cache.stats.misses) == (1, 2)
    with CachingClient(client(server.url), tmp_path / "c.sqlite") as reopened:
        assert reopened.continuation_logprobs(PREFIX, [ALIEN]) == first
        assert server.count == 2


def test_the_cache_refuses_scoring_when_its_client_cannot(tmp_path: Path) -> None:
    with CachingClient(ScriptedClient(), tmp_path / "c.sqlite") as cache, \
            pytest.raises(ConfigError, match=r"prompt logprobs.*ScriptedClient cannot score"):
        cache.continuation_logprobs(PREFIX, [ALIEN])


@pytest.mark.integration
def test_the_embedded_llamacpp_server_cannot_score(artifact_store: ArtifactStore) -> None:
    """llama.cpp's /v1/completions ignores `echo`: a clear ConfigError, never a wrong score."""
    name, path = resolve_model("smollm2-135m", artifact_store)
    with LocalLLMServer(path, model_name=name, n_ctx=256, n_parallel=1) as server:
        local = OpenAIClient(base_url=server.base_url, model=name, timeout_s=None)
        with pytest.raises(ConfigError, match=r"prompt logprobs.*such as vLLM"):
            local.continuation_logprobs(PREFIX, [ALIEN])
