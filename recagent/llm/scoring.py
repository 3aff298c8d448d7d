"""Continuation scoring: log P(continuation | prefix) from a server's prompt logprobs.

A narrow protocol of its own, next to `LLMClient` rather than inside it: most backends
cannot score a given text (llama.cpp's server ignores `echo`), and the rankers that only
generate should not have to care. The transport lives in `OpenAIClient` (its SDK, retries
and deadline); this module holds the request's shape and the parsing of the answer, so
both can be tested without a server.

How a score is read: /v1/completions with `echo=True`, `logprobs=0` and `max_tokens=1`
returns every prompt token with its logprob (vLLM: `prompt_logprobs`). The prompt is
`prefix + continuation`; the continuation's tokens are those whose text offset starts at
or after the prefix's end, so put the leading space inside the continuation
(" Alien (1979)") and the boundary falls on a token start. The one token the server
generates lies past the prompt and is ignored (vLLM computes one even for max_tokens=0,
which not every server accepts).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from recagent.errors import ConfigError, LLMError
from recagent.types import Usage
from retrieval.types import Frozen

NEEDS_PROMPT_LOGPROBS = (
    "likelihood scoring needs a server that returns prompt logprobs (/v1/completions with "
    "echo=True and logprobs), such as vLLM; the embedded llama.cpp server does not"
)


class Continuations(Frozen):
    """What one scoring call returned: per continuation, the sum of its tokens' logprobs
    and its token count, with the call's usage (all prompts together) and latency."""

    logprobs: list[float]
    tokens: list[int] = Field(default_factory=list)
    usage: Usage = Usage()
    latency_s: float = 0.0


@runtime_checkable
class ContinuationScorer(Protocol):
    """A model that can say how likely a given text is after a given prefix."""

    @property
    def model(self) -> str: ...

    def continuation_logprobs(self, prefix: str, continuations: Sequence[str]) -> Continuations:
        """log P(continuation | prefix) for each continuation, in order (one request)."""
        ...


def _check_request(prefix: str, continuations: Sequence[str]) -> None:
    """A ConfigError for a request that cannot be scored (caller's mistake, not the model's)."""
    if not prefix:
        raise ConfigError("continuation scoring needs a non-empty prefix")
    if (isinstance(continuations, str) or not continuations
            or not all(c.strip() for c in continuations)):
        raise ConfigError("continuations must be a non-empty sequence of non-blank texts, got "
                          f"{continuations!r}")


def completions_request(model: str, prefix: str, continuations: Sequence[str]) -> dict[str, Any]:
    """The /v1/completions arguments that score all continuations in one batched request;
    ConfigError for a request that cannot be scored."""
    _check_request(prefix, continuations)
    return {"model": model, "prompt": [prefix + c for c in continuations], "echo": True,
            "logprobs": 0, "max_tokens": 1, "temperature": 0.0}


def parse_continuations(
    body: str, prefix: str, continuations: Sequence[str], *, latency_s: float = 0.0
) -> Continuations:
    """The scores in a /v1/completions answer's body. ConfigError when the server echoed
    no prompt logprobs (it cannot score); LLMError for a malformed or misaligned answer."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise LLMError(f"the LLM server sent no JSON: {body[:300]!r}") from e
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or len(choices) != len(continuations):
        got = len(choices) if isinstance(choices, list) else "no"
        raise LLMError(f"expected {len(continuations)} choices, one per continuation; got {got}")
    by_index: dict[int, dict[str, Any]] = {}
    for n, choice in enumerate(choices):
        index = choice.get("index", n) if isinstance(choice, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(continuations) or index in by_index:
            raise LLMError(f"choice {n} of the completion has no usable index")
        by_index[index] = choice
    sums: list[float] = []
    counts: list[int] = []
    for n, continuation in enumerate(continuations):
        total, count = continuation_logprob(by_index[n].get("logprobs"), prefix, continuation)
        sums.append(total)
        counts.append(count)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Continuations(
        logprobs=sums, tokens=counts, latency_s=latency_s,
        usage=Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0)),
    )


def continuation_logprob(logprobs: Any, prefix: str, continuation: str) -> tuple[float, int]:
    """Sum and count of the continuation's token logprobs in one choice's echoed `logprobs`
    (`tokens`, `token_logprobs`, `text_offset`). Tokens a server puts before the prompt (a
    BOS such as "<s>") shift the offsets; they are found by where the prompt's text starts
    in the tokens' text."""
    if not isinstance(logprobs, dict) or not all(
            isinstance(logprobs.get(k), list) for k in ("tokens", "token_logprobs", "text_offset")):
        raise ConfigError(f"{NEEDS_PROMPT_LOGPROBS} (no echoed token logprobs in the answer)")
    tokens, values, offsets = (logprobs["tokens"], logprobs["token_logprobs"],
                               logprobs["text_offset"])
    if not len(tokens) == len(values) == len(offsets):
        raise LLMError(f"echoed logprobs of unequal lengths: {len(tokens)} tokens, "
                       f"{len(values)} logprobs, {len(offsets)} offsets")
    prompt = prefix + continuation
    shift = "".join(str(t) for t in tokens).find(prompt)
    if shift < 0:
        raise ConfigError(f"{NEEDS_PROMPT_LOGPROBS} (the echoed tokens do not spell the "
                          "prompt)")
    start, end = shift + len(prefix), shift + len(prompt)
    picked = [v for off, v in zip(offsets, values, strict=True) if start <= off < end]
    if not picked:
        raise LLMError(f"no token starts inside the continuation {continuation!r}")
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in picked):
        raise LLMError(f"a token of {continuation!r} has no finite logprob: {picked}")
    return float(sum(picked)), len(picked)

