"""One policy for every structured LLM call: ask, validate, re-ask once, or fail loudly.

The caller renders its prompt and names the pydantic model of the answer. The reply is
validated by `model_validate_json` (with an optional validation `context`, e.g. the labels
the answer may use, and an optional `check` that raises ValueError). An invalid reply is
re-asked once, showing the model its own answer (truncated) and what was wrong with it,
in the words of `prompts/reask.j2`. A second invalid reply raises
`StructuredResponseError`: a `ResponseError` with every attempt's raw answer, their
summed usage and the failed call's audit record, so a caller that can do without the
answer (a fallback) still records what happened. Transport errors are not retried here:
the client already retries what is transient, and they propagate unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from recagent.errors import ResponseError
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary, RenderedPrompt
from recagent.types import Invocation, Usage

M = TypeVar("M", bound=BaseModel)

MAX_ATTEMPTS = 2
"""The first answer and one re-ask."""
REASK_TEMPLATE = "reask"
RAW_SHOWN_CHARS = 2000
"""The most of its own answer the model is shown again in the re-ask."""
ERRORS_SHOWN = 3


class StructuredResponseError(ResponseError):
    """Still no valid answer after the re-ask; `invocation` is the failed call's audit
    record (the last messages and raw answer, all attempts, summed usage and latency) and
    `problem` the last validation error in a line."""

    def __init__(self, message: str, invocation: Invocation, raws: list[str],
                 problem: str) -> None:
        super().__init__(message, invocation.raw, invocation.attempts, raws=raws,
                         usage=invocation.usage)
        self.invocation, self.problem = invocation, problem


def describe_error(error: ValueError) -> str:
    """A validation failure in one line: its first few problems, each with its location."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                         for e in error.errors()[:ERRORS_SHOWN])
    return str(error)


def structured_call(
    client: LLMClient,
    prompts: PromptLibrary,
    prompt: RenderedPrompt,
    answer: type[M],
    *,
    schema: JsonSchema,
    example: str,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = 0,
    context: dict[str, Any] | None = None,
    check: Callable[[M], object] | None = None,
    failure: str = "unusable answer",
) -> tuple[M, Invocation]:
    """Ask `client` with `prompt` for JSON of `schema`, validated as `answer`.

    `example` is the expected JSON shape, shown in the re-ask; `failure` opens the error's
    message. Returns the validated answer and the call's `Invocation`; raises
    `StructuredResponseError` after `MAX_ATTEMPTS` invalid answers, and whatever the
    client raises (TransportError, LLMError, ConfigError) at once."""
    messages = list(prompt.messages)
    raws: list[str] = []
    usage, latency, problem = Usage(), 0.0, ""
    finish: str | None = None
    start = time.perf_counter()

    def invocation() -> Invocation:
        return Invocation(
            template=prompt.template, template_hash=prompt.template_hash, model=client.model,
            messages=messages, raw=raws[-1], attempts=len(raws), usage=usage,
            latency_s=latency or time.perf_counter() - start, finish_reason=finish,
        )

    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt > 1:  # show the model its own answer and what was wrong with it
            reask = prompts.render(REASK_TEMPLATE, error=problem, example=example)
            messages = [*prompt.messages,
                        {"role": "assistant", "content": raws[-1][:RAW_SHOWN_CHARS]},
                        *reask.messages]
        completion = client.complete(messages, schema=schema, max_tokens=max_tokens,
                                     temperature=temperature, seed=seed)
        raws.append(completion.text)
        usage, latency = usage + completion.usage, latency + completion.latency_s
        finish = completion.finish_reason
        try:  # pydantic's ValidationError is a ValueError too
            value = answer.model_validate_json(completion.text, context=context)
            if check is not None:
                check(value)
        except ValueError as e:
            problem = describe_error(e)
            continue
        return value, invocation()
    raise StructuredResponseError(f"{failure}: {problem}", invocation(), raws, problem)
