"""The shapes of what went wrong with an answer, and what was done about it: the gate's
repairs, the explanations refused and why, and the LLM steps that failed (degradations).
Re-exported by recagent.types, where every shape is imported from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, computed_field, model_validator

from recagent.errors import DeadlineError, LLMError, ResponseError, TransportError
from retrieval.types import Frozen

RepairKind = Literal["unknown_label", "not_candidate", "seen", "duplicate", "violates",
                     "empty_reason", "unusable_reason", "filled"]
"""What the final gate did: dropped an answer naming no candidate label (unknown_label) or
id (not_candidate), an already seen item, a duplicate, or an item breaking a limit of the
request (violates); explained an item from retrieval evidence because its reason was
empty (empty_reason) or unusable (unusable_reason: talk about the prompt's labels, a
looping phrase, another item's sentence); or topped the list up from retrieval order (filled)."""

DegradedReason = Literal["parse", "deadline", "transport", "llm_error", "no_valid_candidate",
                         "error"]
"""Why an answer fell back to retrieval order: the model's answer was unusable
(ResponseError), the request's deadline passed (DeadlineError), the call failed
(TransportError), another LLMError, the model named no valid candidate, or any other
exception of the ranker. A configuration error (ConfigError) is raised, never degraded."""


DegradedStep = Literal["rank", "explain", "extract", "plan"]
"""The LLM steps a request can ask for: ranking the candidates (rank), wording the
explanations (explain), reading a chat message (extract), the agent's plan (plan)."""


class Degradation(Frozen):
    """One LLM step the configuration asked for that failed; the answer still shipped, from
    the path without that step (retrieval order, template sentences, the rules' reading).

    Any step records its failure the same way, so the CLI (`--json`, `--strict` exit 3), the
    Python API, the service and /metrics all see it:

        trace = trace.degrade(Degradation.of("plan", error))   # error: the exception caught

    `code` ("explain:deadline", "rank:parse", "plan:transport") is what to count by."""

    step: DegradedStep
    reason: DegradedReason
    detail: str
    """The failure in words, for people: never parse it."""

    @model_validator(mode="before")
    @classmethod
    def _drop_code(cls, data: object) -> object:
        """`code` is derived: a dumped Degradation validates again."""
        if isinstance(data, dict) and "code" in data:
            data = {k: v for k, v in data.items() if k != "code"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def code(self) -> str:
        return f"{self.step}:{self.reason}"

    @classmethod
    def of(cls, step: DegradedStep, error: BaseException) -> Degradation:
        """The degradation for `error`, caught while running `step` (its reason from the
        error's type, never from its message)."""
        return cls(step=step, reason=degraded_reason(error),
                   detail=f"{type(error).__name__}: {error}")


def degraded_reason(error: BaseException) -> DegradedReason:
    """The kind of a step's failure, for counting: never read from the message."""
    if isinstance(error, ResponseError):
        return "parse"
    if isinstance(error, DeadlineError):
        return "deadline"
    if isinstance(error, TransportError):
        return "transport"
    if isinstance(error, LLMError):
        return "llm_error"
    return "error"


class Repair(Frozen):
    """One thing the final gate changed about a ranker's answer; count it by `kind`."""

    kind: RepairKind
    item_id: str | None = None
    """What the ranker named that was dropped or re-explained (for unknown_label, the
    label it gave); None for a top-up."""
    count: Annotated[int, Field(ge=1)] = 1
    """How many items this repair covers (a top-up counts every item it added)."""
    detail: str
    """The same, in words, for people: never parse it."""


ExplanationKind = Literal["llm", "replaced", "template"]
"""Who wrote a shipped explanation: the LLM, and it passed the checker (llm); the LLM, but
it failed the checker or was missing, so a template from the evidence was shipped
(replaced); a template because no LLM was asked (template)."""

ExplanationFailureKind = Literal[
    "empty", "label_talk", "meta_talk", "looping", "repeated", "unknown_title",
    "unknown_genre", "unknown_number", "claims_seen", "bare_metadata", "cut_off", "too_long",
    "several_sentences", "copies_evidence", "missing", "llm_failed"]
"""Why an LLM's explanation was not shipped (recagent/explain/checker.py): empty; talk about
the prompt's labels (label_talk) or about the prompt itself ("the user", "candidate",
list numbers: meta_talk); a looping phrase; the same sentence as an earlier item's
(repeated); a title that is neither the item nor in the history (unknown_title); a genre
neither the item's nor a cited history item's (unknown_genre); a percentage not in the
evidence (unknown_number); a claim that the user already has, watched or rated the item
(claims_seen); bare catalog metadata (bare_metadata). Of form (recagent/explain/form.py):
cut off by the server or not ending as a sentence (cut_off), over the prompt's word limit
(too_long), more than one sentence (several_sentences), mostly the evidence lines' own
words (copies_evidence). Not the checker's: the answer had
no sentence for the item (missing), or the call failed (llm_failed)."""


class ExplanationFailure(Frozen):
    kind: ExplanationFailureKind
    detail: str
    """The same, in words, for people: never parse it."""


class ExplanationRecord(Frozen):
    """How one returned item's explanation came about; count these by `kind`."""

    item_id: str
    kind: ExplanationKind
    failures: list[ExplanationFailure] = Field(default_factory=list)
    """Why the LLM's sentence was replaced (kind 'replaced' only)."""
    rejected: str | None = None
    """The LLM's sentence that was replaced, for audit."""


class ExplanationCounts(Frozen):
    llm: Annotated[int, Field(ge=0)] = 0
    replaced: Annotated[int, Field(ge=0)] = 0
    template: Annotated[int, Field(ge=0)] = 0
