"""VLLMEngineClient without vLLM: a stand-in at the `vllm.LLM` boundary (its `chat`,
returning objects shaped like vLLM's RequestOutput) checks the micro-batching, the
conversion to Completion, failures and close(). The real engine is tested in
tests/test_vllm_engine.py.

Ordering is forced, never timed: the stand-in's `chat` can hold a batch until the test
has queued the next requests, so which requests share a batch is deterministic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eval.config import LLMConfig
from eval.evaluate import open_eval_llm
from recagent.errors import ConfigError, LLMError
from recagent.llm.backends import vllm_engine
from recagent.llm.backends.vllm_engine import (
    LOGPROB_FLOOR,
    SamplingRequest,
    VLLMEngineClient,
    check_vllm,
    to_completion,
)
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.llm.client import LLMClient
from recagent.types import Completion
from recagent.wiring import Settings, engine_model

WAIT_S = 30.0
"""Only a guard against a hung test, never a measurement."""


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None = None


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclass
class StandInLLM:
    """Answers each conversation with 'echo:<last message>:<max_tokens>'; can hold a call
    at `gate` and fail the calls that `fail_when` picks."""

    gate: threading.Event | None = None
    fail_when: Callable[[list[list[dict[str, str]]]], bool] = lambda conversations: False
    entered: threading.Event = field(default_factory=threading.Event)
    batches: list[list[str]] = field(default_factory=list)

    def chat(self, conversations: list[list[dict[str, str]]], params: list[dict[str, Any]],
             use_tqdm: bool = True) -> list[RequestOutput]:
        assert use_tqdm is False and len(params) == len(conversations)
        self.batches.append([c[-1]["content"] for c in conversations])
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        if self.fail_when(conversations):
            raise RuntimeError("engine core died")
        return [RequestOutput(prompt_token_ids=[1] * len(c[-1]["content"]),
                              outputs=[CompletionOutput(
                                  text=f"echo:{c[-1]['content']}:{p['max_tokens']}",
                                  token_ids=[7, 8, 9])])
                for c, p in zip(conversations, params, strict=True)]

    def get_tokenizer(self) -> Any:
        raise AssertionError("no token needed decoding")


def params(request: SamplingRequest) -> dict[str, Any]:
    return {"max_tokens": request.max_tokens, "schema": request.schema}


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


def ask(client: LLMClient, text: str, max_tokens: int = 5) -> Completion:
    return client.complete([{"role": "system", "content": "s"}, {"role": "user", "content": text}],
                           max_tokens=max_tokens)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.005)


def test_concurrent_calls_are_batched_and_each_caller_gets_its_own_answer(
    pool: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    llm = StandInLLM(gate=gate)
    with VLLMEngineClient(llm, model="m", batch_window_s=0.0, sampling_params=params) as client:
        first = pool.submit(ask, client, "q0", 10)
        assert llm.entered.wait(WAIT_S)  # q0 is being generated, alone
        rest = [pool.submit(ask, client, f"q{n}", 10 + n) for n in range(1, 5)]
        wait_until(lambda: client.pending == 4)
        gate.set()
        answers = [f.result(WAIT_S) for f in [first, *rest]]
        assert client.stats.sizes == [1, 4]
        assert client.stats.batches == 2 and client.stats.requests == 5
        assert client.stats.largest == 4
    assert sorted(llm.batches[1]) == ["q1", "q2", "q3", "q4"]
    # each caller got the answer to its own conversation and its own max_tokens
    assert [a.text for a in answers] == [f"echo:q{n}:{10 + n}" for n in range(5)]
    assert answers[2].usage.prompt_tokens == 2 and answers[2].usage.completion_tokens == 3
    assert answers[2].top_logprobs == []
    assert client.model == "m"


def test_logprobs_and_usage_are_converted_as_the_server_does() -> None:
    # vLLM's dict per position: the sampled token first (here rank 3), then the top ranks.
    positions = [
        {5: Logprob(-2.0, 3, "C"), 1: Logprob(-0.5, 1, "A"), 2: Logprob(-1.0, 2, " B")},
        {9: Logprob(-math.inf, 1, None), 4: Logprob(-3.0, 2, "}")},
    ]
    output = RequestOutput(prompt_token_ids=[1, 2, 3, 4],
                           outputs=[CompletionOutput("C}", [5, 9], positions)])
    decoded: list[int] = []

    def decode(token_id: int) -> str:
        decoded.append(token_id)
        return f"<{token_id}>"

    done = to_completion(output, 2, latency_s=0.25, decode=decode)
    assert done.text == "C}" and done.latency_s == 0.25
    assert done.usage.prompt_tokens == 4 and done.usage.completion_tokens == 2
    # the first top_logprobs entries, as `vllm serve` returns them; -inf clamped like it
    assert done.top_logprobs == [{"C": -2.0, "A": -0.5}, {"<9>": LOGPROB_FLOOR, "}": -3.0}]
    assert decoded == [9]  # only a token vLLM left undecoded
    assert to_completion(output, 0, latency_s=0.0, decode=decode).top_logprobs == []
    with pytest.raises(LLMError, match="no completion"):
        to_completion(RequestOutput([1], []), 0, latency_s=0.0, decode=decode)


def test_an_engine_failure_reaches_every_waiting_caller(pool: ThreadPoolExecutor) -> None:
    gate = threading.Event()
    llm = StandInLLM(gate=gate, fail_when=lambda conversations: True)
    with VLLMEngineClient(llm, model="m", batch_window_s=0.0, sampling_params=params) as client:
        first = pool.submit(ask, client, "q0")
        assert llm.entered.wait(WAIT_S)
        rest = [pool.submit(ask, client, f"q{n}") for n in range(1, 4)]
        wait_until(lambda: client.pending == 3)
        gate.set()
        for future in [first, *rest]:
            with pytest.raises(LLMError, match="engine core died"):
                future.result(WAIT_S)
        # the batch of 3 failed, then each of its requests failed alone
        assert client.stats.sizes == [1, 3, 1, 1, 1]
        assert client.running  # the worker survives a failed batch


def test_one_bad_request_fails_alone(pool: ThreadPoolExecutor) -> None:
    gate = threading.Event()
    llm = StandInLLM(gate=gate, fail_when=lambda cs: any(c[-1]["content"] == "bad" for c in cs))
    with VLLMEngineClient(llm, model="m", batch_window_s=0.0, sampling_params=params) as client:
        first = pool.submit(ask, client, "q0")
        assert llm.entered.wait(WAIT_S)
        rest = {text: pool.submit(ask, client, text) for text in ("q1", "bad", "q2")}
        wait_until(lambda: client.pending == 3)
        gate.set()
        assert first.result(WAIT_S).text == "echo:q0:5"
        assert rest["q1"].result(WAIT_S).text == "echo:q1:5"
        assert rest["q2"].result(WAIT_S).text == "echo:q2:5"
        with pytest.raises(LLMError, match="engine core died"):
            rest["bad"].result(WAIT_S)


def test_refused_sampling_parameters_fail_only_their_request(pool: ThreadPoolExecutor) -> None:
    def picky(request: SamplingRequest) -> dict[str, Any]:
        if request.max_tokens == 13:
            raise ValueError("max_tokens 13 is unlucky")
        return params(request)

    llm = StandInLLM()
    with VLLMEngineClient(llm, model="m", sampling_params=picky) as client:
        with pytest.raises(LLMError, match="unlucky"):
            ask(client, "q", 13)
        assert ask(client, "q", 12).text == "echo:q:12"
    assert llm.batches == [["q"]]  # the refused request never reached chat


def test_close_fails_queued_requests_stops_the_worker_and_refuses_new_calls(
    pool: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    llm = StandInLLM(gate=gate)
    client = VLLMEngineClient(llm, model="m", batch_window_s=0.0, sampling_params=params)
    in_flight = pool.submit(ask, client, "q0")
    assert llm.entered.wait(WAIT_S)
    queued = pool.submit(ask, client, "q1")
    wait_until(lambda: client.pending == 1)
    closing: Future[None] = pool.submit(client.close)
    with pytest.raises(LLMError, match="closed before"):
        queued.result(WAIT_S)
    gate.set()
    closing.result(WAIT_S)
    assert in_flight.result(WAIT_S).text == "echo:q0:5"  # the batch in flight finished
    assert not client.running
    with pytest.raises(LLMError, match="closed"):
        ask(client, "q2")
    assert llm.batches == [["q0"]]


def test_bad_batching_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_batch"):
        VLLMEngineClient(StandInLLM(), model="m", max_batch=0, sampling_params=params)


def test_llm_config_engine_options() -> None:
    assert LLMConfig().engine == "http"
    assert LLMConfig(engine="vllm", preset="smollm2-135m", device="gpu").device == "gpu"
    with pytest.raises(ValueError, match="engine"):
        LLMConfig(device="gpu")  # an engine setting the HTTP path would ignore
    with pytest.raises(ValueError, match="base_url"):
        LLMConfig(engine="vllm", base_url="http://x/v1", model="m")


def test_the_vllm_engine_without_vllm_is_a_config_error(tmp_path: Path) -> None:
    # This environment (.venv) has no vllm; the message says what to install, and nothing
    # is converted or loaded first.
    with pytest.raises(ConfigError, match=r"install recagent\[vllm\] in this environment"):
        check_vllm()
    config = LLMConfig(engine="vllm", preset="smollm2-135m")
    with pytest.raises(ConfigError, match=r"recagent\[vllm\]"), \
            open_eval_llm(config, Settings(home=tmp_path)):
        pass
    assert not (tmp_path / "vllm-models").exists()


def test_engine_model_is_a_local_folder_or_a_prepared_preset(tmp_path: Path) -> None:
    folder = tmp_path / "Qwen-folder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    settings = Settings(home=tmp_path / "home")
    assert engine_model(LLMConfig(engine="vllm", model=str(folder)), settings) == \
        (folder, "Qwen-folder")
    with pytest.raises(ConfigError, match="nothing is fetched from a hub"):
        engine_model(LLMConfig(engine="vllm", model="Qwen/Qwen2.5-1.5B-Instruct"), settings)
    with pytest.raises(ConfigError, match="takes a preset"):
        engine_model(LLMConfig(engine="vllm", preset="/models/x.gguf"), settings)
    # a preset already converted (as `models prepare-vllm` leaves it) is used as it is
    prepared = VLLMModelPreparer(settings.artifacts, settings.home / "vllm-models",
                                 python=tmp_path / "no-python").folder_for("smollm2-135m")
    prepared.mkdir(parents=True)
    assert engine_model(LLMConfig(engine="vllm", preset="smollm2-135m"), settings) == \
        (prepared, "smollm2-135m")


def test_the_vllm_engine_gets_the_configured_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    opened: list[dict[str, Any]] = []

    @contextmanager
    def fake_open(model: str, **kwargs: Any) -> Iterator[VLLMEngineClient]:
        opened.append({"model": model, **kwargs})
        with VLLMEngineClient(StandInLLM(), model=kwargs["name"],
                              sampling_params=params) as client:
            yield client

    monkeypatch.setattr(vllm_engine, "check_vllm", lambda: None)
    monkeypatch.setattr(vllm_engine, "open_engine_client", fake_open)
    config = LLMConfig(engine="vllm", model=str(folder), device="gpu", max_model_len=8192)
    with open_eval_llm(config, Settings(home=tmp_path)) as client:
        assert ask(client, "q").text == "echo:q:5"
    assert opened == [{"model": str(folder), "name": "m", "device": "gpu",
                       "max_model_len": 8192, "kv_cache_gib": 1, "cpu_cores": None}]
