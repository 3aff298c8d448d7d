"""An LLMClient over an in-process `vllm.LLM`: concurrent calls become one batched `chat`.

For large evaluation runs on a GPU machine, HTTP is only overhead: the harness already
runs `concurrency` threads, so each `complete` queues its request and one worker thread
sends everything pending in ONE `LLM.chat` call, which vLLM schedules as a batch. The
answer has the shape OpenAIClient gives for the same request against `vllm serve` (text,
usage, per-token top logprobs as the server picks them), so response caches, state logs
and reports cannot tell which path ran.

vLLM is imported only by `load_engine` and `vllm_sampling_params`, so this module (and
its tests with a stand-in engine) imports without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from recagent.errors import ConfigError, LLMError
from recagent.llm.backends.vllm_server import Device, engine_environment, engine_options
from recagent.llm.client import JsonSchema, Message
from recagent.types import Completion, Usage

LOGPROB_FLOOR = -9999.0
"""vLLM's server clamps -inf logprobs to this (JSON has no -inf); so does this client."""


@dataclass(frozen=True)
class SamplingRequest:
    """What one `complete` asks of the sampler, independent of vLLM's classes."""

    schema: JsonSchema | None
    max_tokens: int
    temperature: float
    top_logprobs: int
    seed: int | None


def vllm_sampling_params(request: SamplingRequest) -> Any:
    """vLLM's SamplingParams for `request`: the JSON schema as structured output (what
    `vllm serve` makes of response_format json_schema), logprobs when asked."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = (StructuredOutputsParams(json=request.schema)
                  if request.schema is not None else None)
    return SamplingParams(max_tokens=request.max_tokens, temperature=request.temperature,
                          seed=request.seed, logprobs=request.top_logprobs or None,
                          structured_outputs=structured)


@dataclass
class BatchStats:
    """The size of every `chat` call sent, in order: shows that batching happened."""

    sizes: list[int] = field(default_factory=list)

    @property
    def batches(self) -> int:
        return len(self.sizes)

    @property
    def requests(self) -> int:
        return sum(self.sizes)

    @property
    def largest(self) -> int:
        return max(self.sizes, default=0)


@dataclass
class _Pending:
    messages: list[Message]
    sampling: SamplingRequest
    began: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Completion | None = None
    error: LLMError | None = None


class VLLMEngineClient:
    """`LLMClient` over `llm` (a `vllm.LLM`, or anything with its `chat`), named `model`.

    `batch_window_s`: how long the worker waits after the first pending request for more
    to join (callers whose answers just came back need a moment to send their next one;
    without it the threads split into groups that never batch together). `max_batch`
    caps one `chat` call. `sampling_params` turns a request into what `chat` takes
    (vLLM's SamplingParams by default; a stand-in in tests). Use as a context manager,
    or call `close()`: it stops the worker (it does not shut the engine down)."""

    def __init__(
        self,
        llm: Any,
        *,
        model: str,
        max_batch: int = 64,
        batch_window_s: float = 0.02,
        sampling_params: Callable[[SamplingRequest], Any] = vllm_sampling_params,
    ) -> None:
        if max_batch < 1 or batch_window_s < 0:
            raise ConfigError(f"need max_batch >= 1 and batch_window_s >= 0; got {max_batch} "
                              f"and {batch_window_s}")
        self._llm = llm
        self._model = model
        self._max_batch = max_batch
        self._window_s = batch_window_s
        self._sampling_params = sampling_params
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._closed = False
        self.stats = BatchStats()
        self._worker = threading.Thread(target=self._run, name="vllm-engine-batcher",
                                        daemon=True)
        self._worker.start()

    @property
    def model(self) -> str:
        return self._model

    @property
    def pending(self) -> int:
        """Requests waiting for the next batch (not those being generated now)."""
        with self._cond:
            return len(self._queue)

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
        sampling = SamplingRequest(schema, max_tokens, temperature, top_logprobs, seed)
        request = _Pending(list(messages), sampling, time.perf_counter())
        with self._cond:
            if self._closed or not self._worker.is_alive():
                raise LLMError("the vLLM engine client is closed")
            self._queue.append(request)
            self._cond.notify_all()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self) -> None:
        """Stop the worker once the batch in flight is done; queued requests fail."""
        with self._cond:
            self._closed = True
            left, self._queue = self._queue, []
            self._cond.notify_all()
        for request in left:
            request.error = LLMError("the vLLM engine client was closed before this request ran")
            request.done.set()
        if self._worker is not threading.current_thread():
            self._worker.join()

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    def __enter__(self) -> VLLMEngineClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # the worker

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._serve(batch)
            except Exception as e:  # a bug here must not leave callers waiting forever
                for request in batch:
                    if not request.done.is_set():
                        _fail(request, f"the vLLM engine client failed: {_describe(e)}")
            for request in batch:
                if not request.done.is_set():
                    _fail(request, "the vLLM engine client lost this request")

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            deadline = time.perf_counter() + self._window_s
            while len(self._queue) < self._max_batch and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:
                return None
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            return batch

    def _serve(self, batch: list[_Pending]) -> None:
        ready: list[tuple[_Pending, Any]] = []
        for request in batch:  # a request vLLM refuses to describe fails alone
            try:
                ready.append((request, self._sampling_params(request.sampling)))
            except Exception as e:
                _fail(request, f"vLLM refused the sampling parameters: {_describe(e)}")
        if not ready:
            return
        self.stats.sizes.append(len(ready))
        try:
            outputs = self._llm.chat([r.messages for r, _ in ready], [p for _, p in ready],
                                     use_tqdm=False)
            if len(outputs) != len(ready):
                raise LLMError(f"vLLM returned {len(outputs)} outputs for {len(ready)} requests")
        except Exception as e:
            if len(ready) > 1:
                # One bad request (e.g. a prompt longer than max_model_len) fails a whole
                # chat call; alone, each request gets its own answer or its own error.
                for request, _ in ready:
                    self._serve([request])
                return
            _fail(ready[0][0], f"the vLLM engine failed: {_describe(e)}")
            return
        for (request, _), output in zip(ready, outputs, strict=True):
            try:
                request.result = to_completion(
                    output, request.sampling.top_logprobs,
                    latency_s=time.perf_counter() - request.began, decode=self._decode)
            except Exception as e:
                request.error = e if isinstance(e, LLMError) else LLMError(
                    f"unreadable vLLM output: {_describe(e)}")
            request.done.set()

    def _decode(self, token_id: int) -> str:
        """A token's text when vLLM did not decode it (as its server does)."""
        return str(self._llm.get_tokenizer().decode([token_id]))


def to_completion(output: Any, top_logprobs: int, *, latency_s: float,
                  decode: Callable[[int], str]) -> Completion:
    """One `vllm.RequestOutput` as a Completion; per generated token the first
    `top_logprobs` entries of vLLM's logprob dict (the sampled token, then the most
    likely), exactly what `vllm serve` returns as `top_logprobs`."""
    if not output.outputs:
        raise LLMError("vLLM returned no completion for a request")
    choice = output.outputs[0]
    usage = Usage(prompt_tokens=len(output.prompt_token_ids or ()),
                  completion_tokens=len(choice.token_ids or ()))
    top: list[dict[str, float]] = []
    if top_logprobs and choice.logprobs:
        for position in choice.logprobs:
            entries = list(position.items())[:top_logprobs]
            top.append({
                (lp.decoded_token if lp.decoded_token is not None else decode(token_id)):
                    max(lp.logprob, LOGPROB_FLOOR)
                for token_id, lp in entries
            })
    return Completion(text=choice.text or "", usage=usage, latency_s=latency_s, top_logprobs=top,
                      finish_reason=getattr(choice, "finish_reason", None))


def check_vllm() -> None:
    """A ConfigError unless vLLM can be imported here (before any model work starts)."""
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("the vLLM engine needs vllm in this Python environment: install "
                          "recagent[vllm] in this environment (`pip install -e '.[vllm]'`)")


def load_engine(
    model: str,
    *,
    device: Device = "cpu",
    max_model_len: int = 2048,
    cpu_cores: str | None = None,
    kv_cache_gib: int = 1,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """A `vllm.LLM` for the folder `model`, set up like VLLMServer: on CPU float32, eager,
    a `kv_cache_gib` KV cache and OMP threads bound to `cpu_cores`; on GPU vLLM's
    defaults plus prefix caching. The environment vLLM reads at start (which its engine
    process inherits) is set only while the engine is built."""
    check_vllm()
    with _environment(engine_environment(device, kv_cache_gib=kv_cache_gib,
                                         cpu_cores=cpu_cores)):
        import vllm

        return vllm.LLM(model=model, max_model_len=max_model_len,
                        **{**engine_options(device), **(extra or {})})


def shutdown_engine(llm: Any) -> None:
    """Stop the engine's core process now rather than at interpreter exit."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


@contextlib.contextmanager
def open_engine_client(
    model: str,
    *,
    name: str,
    device: Device = "cpu",
    max_model_len: int = 2048,
    cpu_cores: str | None = None,
    kv_cache_gib: int = 1,
) -> Iterator[VLLMEngineClient]:
    """`load_engine` and a client over it, both stopped on exit."""
    llm = load_engine(model, device=device, max_model_len=max_model_len, cpu_cores=cpu_cores,
                      kv_cache_gib=kv_cache_gib)
    try:
        with VLLMEngineClient(llm, model=name) as client:
            yield client
    finally:
        shutdown_engine(llm)


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fail(request: _Pending, message: str) -> None:
    request.error = LLMError(message)
    request.done.set()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
