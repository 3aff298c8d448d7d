"""One narrow LLM interface, and its implementation over any OpenAI-compatible server.

vLLM, OpenAI and the embedded llama.cpp server all speak the same protocol, so one
client serves them all. Transport failures are retried here (and only here); what
the model *says* is judged elsewhere, so an exception's text can never be mistaken
for an answer.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

import openai
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from recagent.errors import ConfigError, LLMError, TransportError
from recagent.types import Completion, Usage

Message = dict[str, str]
JsonSchema = dict[str, Any]

_TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)


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
    """The `openai` SDK against any OpenAI-compatible base URL."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self._model = model
        self._sdk = openai.OpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )
        self._retries = retries
        self._backoff_s = backoff_s
        self.structured_mode: Literal["json_schema", "json_object"] = "json_schema"
        """Switches to json_object once if the server rejects json_schema."""

    @property
    def model(self) -> str:
        return self._model

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
        if schema is not None:
            kwargs["response_format"] = self._response_format(schema)
        try:
            return self._send(kwargs)
        except openai.BadRequestError as e:
            if schema is None or self.structured_mode != "json_schema" or not _about_format(e):
                raise LLMError(f"the LLM server rejected the request: {e}") from e
            # Some servers only know {"type": "json_object"}; the caller validates anyway.
            self.structured_mode = "json_object"
            kwargs["response_format"] = self._response_format(schema)
            try:
                return self._send(kwargs)
            except openai.APIStatusError as e2:
                raise LLMError(f"the LLM server rejected the request: {e2}") from e2
        except openai.AuthenticationError as e:
            raise ConfigError(f"the LLM server refused the API key: {e}") from e
        except openai.NotFoundError as e:
            raise ConfigError(f"model {self._model!r} or endpoint not found: {e}") from e
        except openai.APIStatusError as e:
            raise LLMError(f"the LLM server answered with an error: {e}") from e

    def _response_format(self, schema: JsonSchema) -> dict[str, Any]:
        if self.structured_mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }

    def _send(self, kwargs: dict[str, Any]) -> Completion:
        @retry(
            retry=retry_if_exception_type(_TRANSIENT),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff_s, max=8),
            reraise=True,
        )
        def call() -> Any:
            return self._sdk.chat.completions.create(**kwargs)

        start = time.perf_counter()
        try:
            response = call()
        except _TRANSIENT as e:
            raise TransportError(
                f"LLM server unreachable or overloaded after {self._retries + 1} tries: {e}"
            ) from e
        latency = time.perf_counter() - start
        if not response.choices:
            raise LLMError("the LLM server returned no choices")
        choice = response.choices[0]
        usage = Usage(
            prompt_tokens=getattr(response.usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(response.usage, "completion_tokens", 0) or 0,
        )
        top: list[dict[str, float]] = []
        if choice.logprobs is not None and choice.logprobs.content:
            top = [
                {alt.token: alt.logprob for alt in tok.top_logprobs}
                for tok in choice.logprobs.content
            ]
        return Completion(
            text=choice.message.content or "", usage=usage, latency_s=latency, top_logprobs=top
        )


def _about_format(error: openai.BadRequestError) -> bool:
    text = str(error).lower()
    return "response_format" in text or "json_schema" in text or "schema" in text
