"""A small error tree: what went wrong decides what the caller can do about it."""

from collections.abc import Sequence
from typing import Protocol


class RecagentError(Exception):
    """Base of every error recagent raises on purpose."""


class ConfigError(RecagentError):
    """Bad settings or input from the user; the message says what to fix."""


class UnknownItemError(ConfigError):
    """Item ids that are not in the catalog."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        shown = ", ".join(ids[:10]) + (" …" if len(ids) > 10 else "")
        super().__init__(f"unknown item id(s), not in the catalog: {shown}")


class EmptyCatalogError(ConfigError):
    """The collection has no items: nothing to recommend from."""


class IncompleteCatalogError(ConfigError):
    """The collection's last ingest did not finish (killed, or still running): re-run it."""


class DataFormatError(ConfigError):
    """A malformed input row; names the file and line."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path, self.line, self.problem = path, line, problem
        super().__init__(f"{path}:{line}: {problem}")


class ModelArtifactError(ConfigError):
    """A model file is missing, could not be fetched, or fails its pinned checksum."""


class LLMError(RecagentError):
    """The LLM could not produce a usable answer."""


class TransportError(LLMError):
    """Timeouts, connection failures, 429 and 5xx: worth retrying."""


class DeadlineError(TransportError):
    """A call's total deadline passed: its tries, the waits between them and a slow reply
    together took too long. A TransportError, so it counts as the call failing."""


class TokenUsage(Protocol):
    """Tokens spent (recagent's `Usage` is one); a protocol, as this module imports nothing
    of recagent."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class ResponseError(LLMError):
    """The model answered, but not in a usable form; carries the raw output.

    `raw` is the last answer, `raws` every attempt's answer in order, `usage` the tokens
    of all attempts together (None when the raiser did not count them)."""

    def __init__(self, message: str, raw: str, attempts: int, *,
                 raws: Sequence[str] | None = None, usage: TokenUsage | None = None) -> None:
        self.raw, self.attempts = raw, attempts
        self.raws: list[str] = list(raws) if raws is not None else [raw]
        self.usage = usage
        super().__init__(f"{message} (after {attempts} attempt(s))")
