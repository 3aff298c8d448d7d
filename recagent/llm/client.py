"""One narrow LLM interface, and its implementation over any OpenAI-compatible server.

vLLM, OpenAI and the embedded llama.cpp server all speak the same protocol, so one
client serves them all. Transport failures are retried here (and only here); what
the model *says* is judged elsewhere, so an exception's text can never be mistaken
for an answer. Whatever goes wrong, `complete` raises a recagent error, never one of
the SDK's or the HTTP library's.
"""

from __future__ import annotations

import contextvars
import functools
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Literal, Protocol

import openai
from openai.types.chat import ChatCompletion
from tenacity import RetryCallState, retry, retry_if_exception, wait_exponential

from recagent.errors import ConfigError, LLMError, RecagentError, TransportError
from recagent.llm import scoring
from recagent.llm.http_errors import (
    about_format,
    describe,
    recagent_errors,
    snippet,
    transient,
)
from recagent.llm.timings import server_timings
from recagent.types import Completion, Usage
from retrieval.errors import DeadlineError

Message = dict[str, str]
JsonSchema = dict[str, Any]

DEADLINE_REMOTE_S = 180.0
"""Default total deadline of one call to a remote server (vLLM, OpenAI): a reply of 512
tokens takes seconds on a GPU even when busy; 180 s leaves room for one try cut by the
120 s per-try timeout and a quick second try, and stops a hung server long before the
4 x 120 s that the tries alone would allow."""

DEADLINE_EMBEDDED_S = 600.0
"""Default total deadline for the embedded llama.cpp server on CPU: the slowest preset
decodes ~10 tok/s, so 512 tokens after a 4k-token prompt, with two requests sharing the
cores, can take 4-5 minutes; twice that is still an answer worth waiting for. Pair it
with `timeout_s=None` (a CPU server sends nothing until it is done, so a shorter per-try
timeout would only cut and retry a slow answer)."""

_CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "recagent_llm_call_deadline", default=None)
"""The `time.monotonic()` deadline of the request the current (worker) thread sends."""


class LLMClient(Protocol):
    """What recagent needs from a language model: one chat call."""

    @property
    def model(self) -> str: ...

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
        """Return the model's reply; `schema` asks for JSON matching it."""
        ...


class OpenAIClient:
    """The `openai` SDK against any OpenAI-compatible base URL.

    Retries: `retries` more tries after a transient failure (timeout, connection error,
    408, 429, 5xx), waiting `backoff_s` * 2**n (at most 8 s) between them.

    Deadline: one `complete` (its tries, the waits between them, the json_object
    fallback and a slow reply together) takes at most `deadline_s`, then raises
    DeadlineError. How that is enforced:

    - each try sends with an HTTP timeout (connect, write, pool and per-read) of the
      time left, capped at `timeout_s` (None: no cap below the deadline);
    - httpx's read timeout bounds each *read*, not the body, so a server that dribbles
      its reply byte by byte would never trip it. So each try runs in a daemon worker
      thread and the caller stops waiting for it at the deadline: the deadline holds
      wherever the request is stuck (connect, headers, body, DNS);
    - the abandoned worker does not linger: a response hook makes the body stop with a
      read timeout at the first chunk past the deadline (which closes the connection),
      and a silent server trips the per-read timeout, itself at most the time left;
    - retrying stops when the next try could not start before the deadline.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        timeout_s: float | None = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        deadline_s: float = DEADLINE_REMOTE_S,
    ) -> None:
        if deadline_s <= 0 or (timeout_s is not None and timeout_s <= 0) or retries < 0:
            raise ConfigError(f"need deadline_s > 0, timeout_s > 0 or None and retries >= 0; "
                              f"got {deadline_s}, {timeout_s} and {retries}")
        self._model = model
        self._sdk = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0,
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [_stop_at_deadline]}),
        )
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._deadline_s = deadline_s
        self.structured_mode: Literal["json_schema", "json_object"] = "json_schema"
        """Switches to json_object once if the server rejects json_schema."""

    @property
    def model(self) -> str:
        return self._model

    @property
    def deadline_s(self) -> float:
        return self._deadline_s

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
        deadline = time.monotonic() + self._deadline_s
        kwargs: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if top_logprobs:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = top_logprobs
        with recagent_errors(self._model):
            if schema is not None:
                kwargs["response_format"] = self._response_format(schema)
            try:
                return self._send(kwargs, deadline)
            except openai.BadRequestError as e:
                if (schema is None or self.structured_mode != "json_schema"
                        or not about_format(e)):
                    raise
                # Some servers only know {"type": "json_object"}; the caller validates anyway.
                self.structured_mode = "json_object"
                kwargs["response_format"] = self._response_format(schema)
                return self._send(kwargs, deadline)

    def continuation_logprobs(self, prefix: str,
                              continuations: Sequence[str]) -> scoring.Continuations:
        """log P(continuation | prefix) of each from the server's prompt logprobs, in one
        /v1/completions request (recagent/llm/scoring.py). Here, not in a class of its own:
        it needs this client's SDK, retries and deadline, and every client the wiring builds
        (and the cache around it) can then score wherever the server can."""
        deadline = time.monotonic() + self._deadline_s
        kwargs = scoring.completions_request(self._model, prefix, continuations)
        with recagent_errors(self._model):
            raw, latency_s = self._call(self._sdk.completions.with_raw_response.create, kwargs,
                                        deadline)
            return scoring.parse_continuations(str(raw.text), prefix, continuations,
                                               latency_s=latency_s)

    def _response_format(self, schema: JsonSchema) -> dict[str, Any]:
        if self.structured_mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }

    def _send(self, kwargs: dict[str, Any], deadline: float) -> Completion:
        """One chat request with retries (see `_call`)."""
        raw, latency_s = self._call(self._sdk.chat.completions.with_raw_response.create,
                                    kwargs, deadline)
        return _to_completion(raw, latency_s=latency_s)

    def _call(self, create: Callable[..., Any], kwargs: dict[str, Any],
              deadline: float) -> tuple[Any, float]:
        """`create(**kwargs)` (an SDK raw-response method) with retries: the raw response and
        its latency, a recagent error, or the SDK's APIStatusError not worth retrying."""
        backoff = wait_exponential(multiplier=self._backoff_s, max=8)
        tries = 0
        last: Exception | None = None
        out_of_time = False

        def stop(state: RetryCallState) -> bool:
            nonlocal out_of_time
            if state.attempt_number > self._retries:
                return True
            out_of_time = time.monotonic() + backoff(state) >= deadline
            return out_of_time

        @retry(retry=retry_if_exception(transient), stop=stop, wait=backoff, reraise=True)
        def call() -> Any:
            nonlocal tries, last
            if time.monotonic() >= deadline:  # e.g. the json_object fallback, too late
                raise _Overdue
            tries += 1
            try:
                return self._try(create, kwargs, deadline)
            except _Overdue:
                raise
            except Exception as e:
                last = e
                raise

        start = time.perf_counter()
        try:
            raw = call()
        except _Overdue:
            raise DeadlineError(self._overdue(tries, last)) from last
        except Exception as e:
            if not transient(e):
                raise
            if out_of_time or time.monotonic() >= deadline:
                raise DeadlineError(self._overdue(tries, e)) from e
            raise TransportError(
                f"LLM server unreachable or overloaded after {tries} tries: {describe(e)}"
            ) from e
        return raw, time.perf_counter() - start

    def _try(self, create: Callable[..., Any], kwargs: dict[str, Any], deadline: float) -> Any:
        """One HTTP try, in a worker thread that the caller gives up on at `deadline`."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Overdue
        timeout = left if self._timeout_s is None else min(self._timeout_s, left)
        outcome = _Outcome()

        def work() -> None:
            _CALL_DEADLINE.set(deadline)
            try:
                outcome.value = create(**kwargs, timeout=timeout)
            except BaseException as e:  # handed to the caller, who raises it
                outcome.error = e
            finally:
                outcome.done.set()

        threading.Thread(target=work, name="recagent-llm-try", daemon=True).start()
        if not outcome.done.wait(left):
            raise _Overdue
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _overdue(self, tries: int, last: BaseException | None) -> str:
        why = f"; the last try: {describe(last)}" if last is not None else ""
        return (f"no answer from the LLM server within the {self._deadline_s:g} s deadline "
                f"({tries} {'try' if tries == 1 else 'tries'}{why})")


class _Outcome:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class _Overdue(Exception):
    """A try could not start, or did not finish, before the deadline."""


def _to_completion(raw: Any, *, latency_s: float) -> Completion:
    """The SDK's raw response as a Completion; LLMError, quoting the body, for anything
    that is not a chat completion with at least one choice."""
    try:
        body = str(raw.text)
    except Exception as e:
        raise LLMError(f"the LLM server's reply could not be read: {describe(e)}") from e
    try:
        response = raw.parse()
        if not isinstance(response, ChatCompletion):
            raise LLMError(f"the LLM server sent something other than a JSON chat completion: "
                           f"{snippet(body)}")
        if not response.choices:
            raise LLMError(f"the LLM server returned no choices: {snippet(body)}")
        choice = response.choices[0]
        usage = Usage(
            prompt_tokens=getattr(response.usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(response.usage, "completion_tokens", 0) or 0,
            **server_timings(response.model_extra),
        )
        top: list[dict[str, float]] = []
        if choice.logprobs is not None and choice.logprobs.content:
            top = [
                {alt.token: alt.logprob for alt in tok.top_logprobs or ()}
                for tok in choice.logprobs.content
            ]
        return Completion(
            text=choice.message.content or "", usage=usage, latency_s=latency_s,
            top_logprobs=top, finish_reason=choice.finish_reason,
        )
    except RecagentError:
        raise
    except Exception as e:
        raise LLMError(f"the LLM server sent a malformed chat completion "
                       f"({describe(e)}): {snippet(body)}") from e


def _stop_at_deadline(response: Any) -> None:
    """An httpx response hook (httpx or httpx2, whichever the SDK uses): the body ends
    with a ReadTimeout at the first chunk that arrives after the call's deadline."""
    deadline = _CALL_DEADLINE.get()
    lib = sys.modules.get(type(response).__module__.partition(".")[0])
    base = getattr(lib, "SyncByteStream", None)
    if deadline is None or lib is None or base is None or not isinstance(response.stream, base):
        return
    response.stream = _deadline_stream(lib)(response.stream, deadline, response.request)


@functools.cache
def _deadline_stream(lib: ModuleType) -> type:
    class DeadlineStream(lib.SyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any, deadline: float, request: Any) -> None:
            self._inner, self._deadline, self._request = inner, deadline, request

        def __iter__(self) -> Any:
            for chunk in self._inner:
                if time.monotonic() > self._deadline:
                    raise lib.ReadTimeout("the reply outlasted the call's deadline",
                                          request=self._request)
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return DeadlineStream
