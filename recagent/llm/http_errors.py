"""How the OpenAI SDK's failures become recagent's errors: which are worth another try,
which are setup errors (exit 2: a refused key, an unknown model), and how an error is
described in one line (status and the start of the body). Kept apart from the client so
the transport (recagent/llm/client.py) reads as retries and deadlines only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openai

from recagent.errors import ConfigError, LLMError, RecagentError

TRANSIENT = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)
TRANSIENT_STATUS = frozenset({408})
"""Statuses without an SDK class of their own that are still worth another try."""

SNIPPET_CHARS = 300


@contextlib.contextmanager
def recagent_errors(model: str) -> Iterator[None]:
    """The client's boundary: whatever fails inside leaves as a recagent error."""
    try:
        yield
    except RecagentError:
        raise
    except openai.AuthenticationError as e:
        raise ConfigError(f"the LLM server refused the API key: {status(e)}") from e
    except openai.NotFoundError as e:
        raise ConfigError(f"model {model!r} or endpoint not found: {status(e)}") from e
    except openai.BadRequestError as e:
        raise LLMError(f"the LLM server rejected the request: {status(e)}") from e
    except openai.APIStatusError as e:
        raise LLMError(f"the LLM server answered with an error: {status(e)}") from e
    except Exception as e:  # nothing foreign gets past it
        raise LLMError(f"the LLM call failed unexpectedly: {describe(e)}") from e


def transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT) or (
        isinstance(error, openai.APIStatusError) and error.status_code in TRANSIENT_STATUS)


def about_format(error: openai.BadRequestError) -> bool:
    text = str(error).lower()
    return "response_format" in text or "json_schema" in text or "schema" in text


def status(error: openai.APIStatusError) -> str:
    """HTTP status and what the server sent, shortened."""
    try:
        body = error.response.text
    except Exception:
        body = str(error.body)
    return f"HTTP {error.status_code}: {snippet(body)}"


def describe(error: BaseException) -> str:
    """`Type: message`, with the cause (the SDK's connection errors say little alone);
    for an HTTP status, the status and the start of the body."""
    if isinstance(error, openai.APIStatusError):
        return f"{type(error).__name__}: {status(error)}"
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def snippet(text: str) -> str:
    if not text:
        return "(an empty body)"
    if len(text) <= SNIPPET_CHARS:
        return repr(text)
    return f"{text[:SNIPPET_CHARS]!r}... ({len(text)} characters)"
