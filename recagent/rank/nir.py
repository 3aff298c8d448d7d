"""NIR multi-step prompting (Wang & Lim 2023, zero-shot next-item recommendation).

Three calls instead of one: (1) summarise the user's preferences from the history,
(2) pick the history items that best represent them, (3) rank the candidates from the
summary and those items. The idea is that a model ranks better from a distilled
profile than from a long raw history. Every step is its own template in `prompts/` and
its own bounded JSON schema (a small model runs away inside an unbounded field).

Step 3 is the answer and is parsed exactly like the listwise ranker's (labels as an
enum, `RankingAnswer`, repaired by the facade). Steps 1 and 2 only feed it, so an
answer of theirs that is still unusable after one re-ask does not fail the request:
it is replaced by a fallback (no summary; the most recent items), recorded in that
step's `Invocation.fallback`, and ranking goes on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import StructuredResponseError, structured_call
from recagent.rank.listwise import (
    LLMRanking,
    RankingAnswer,
    answer_schema,
    describe_history,
    labels_for,
    normalize_label,
    order_from_answer,
    ranking_example,
    tokens_per_item,
)
from recagent.types import Candidate, Interaction, Invocation, Item, Usage

PREFERENCES_MAX_CHARS = 240
"""Longest step-1 summary, in the schema and cut to it when a server ignores maxLength."""

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _Preferences(BaseModel):
    """Step 1's answer: the summary, stripped and cut to PREFERENCES_MAX_CHARS."""

    model_config = ConfigDict(extra="ignore")
    preferences: Annotated[str, Field(min_length=1)]

    @field_validator("preferences")
    @classmethod
    def _stripped(cls, text: str) -> str:
        text = text.strip()
        if not text:
            raise ValueError("empty summary")
        return text[:PREFERENCES_MAX_CHARS]


class _Representative(BaseModel):
    """Step 2's answer, validated with context {"labels": history labels, "n": most to
    keep}: known labels, first mention only, at most n; none at all is an error."""

    model_config = ConfigDict(extra="ignore")
    representative: list[str]

    @field_validator("representative")
    @classmethod
    def _known(cls, raw: list[str], info: ValidationInfo) -> list[str]:
        context: dict[str, Any] = info.context or {}
        labels: Sequence[str] = context.get("labels", ())
        known, picked = set(labels), []
        for label in map(normalize_label, raw):
            if label in known and label not in picked:
                picked.append(label)
        if not picked:
            raise ValueError(f"no history label among {', '.join(labels)}")
        return picked[: context.get("n", len(picked))]


def preferences_schema() -> JsonSchema:
    """Step 1: one bounded string."""
    return {
        "type": "object",
        "properties": {"preferences": {"type": "string", "minLength": 1,
                                       "maxLength": PREFERENCES_MAX_CHARS}},
        "required": ["preferences"],
        "additionalProperties": False,
    }


def representative_schema(labels: Sequence[str], n: int) -> JsonSchema:
    """Step 2: 1 to n history labels, pinned to the history by an enum."""
    return {
        "type": "object",
        "properties": {"representative": {
            "type": "array", "items": {"type": "string", "enum": list(labels)},
            "minItems": 1, "maxItems": n,
        }},
        "required": ["representative"],
        "additionalProperties": False,
    }


def history_labels(n: int) -> list[str]:
    """H1, H2, …: never confused with the candidates' letters in step 3."""
    return [f"H{i}" for i in range(1, n + 1)]


@dataclass(frozen=True)
class NIRTemplates:
    preferences: str = "nir_preferences"
    representative: str = "nir_representative"
    rank: str = "nir_rank"


@dataclass(frozen=True)
class _Step(Generic[T]):
    """One structured call: the parsed value (None when unusable) and its audit record."""

    value: T | None
    invocation: Invocation
    problem: str | None = None


class NIRRanker:
    """A `Ranker` in three LLM calls; its invocation holds each call in `steps`."""

    def __init__(
        self,
        client: LLMClient,
        prompts: PromptLibrary,
        *,
        templates: NIRTemplates = NIRTemplates(),
        n_representative: int = 5,
        max_history: int = 20,
        temperature: float = 0.0,
        seed: int | None = 0,
        explain: bool = True,
    ) -> None:
        if n_representative < 1:
            raise ValueError("n_representative must be at least 1")
        self.client = client
        self.prompts = prompts
        self.templates = templates
        self.n_representative = n_representative
        self.max_history = max_history
        self.temperature = temperature
        self.seed = seed
        self.explain = explain
        self.tokens_per_item = tokens_per_item(explain)

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        rows = describe_history(history[-self.max_history:])
        steps: list[Invocation] = []
        preferences = ""
        if rows:  # nothing to summarise in a cold start
            summary = self._preferences(rows)
            steps.append(summary.invocation)
            preferences = summary.value or ""
        representative = self._fallback_items(rows)
        if len(rows) > 1:  # with one item there is nothing to choose
            picked = self._representative(rows, preferences)
            steps.append(picked.invocation)
            if picked.value is not None:
                representative = picked.value
        labels = labels_for(len(candidates))
        by_label = {lab: c.item.id for lab, c in zip(labels, candidates, strict=True)}
        prompt = self.prompts.render(
            self.templates.rank, preferences=preferences, representative=representative, k=k,
            explain=self.explain,
            candidates=[{"label": lab, "text": c.item.text or c.item.title}
                        for lab, c in zip(labels, candidates, strict=True)])
        # The answer itself: still unusable after the re-ask, it fails the request.
        answer, final = structured_call(
            self.client, self.prompts, prompt, RankingAnswer,
            schema=answer_schema(labels, k, explain=self.explain),
            example=ranking_example(self.explain), max_tokens=40 + self.tokens_per_item * k,
            temperature=self.temperature, seed=self.seed, failure="unparseable ranking",
        )
        steps.append(final)
        order, unknown = order_from_answer(answer, by_label, explain=self.explain)
        return LLMRanking(order=order, invocation=self._summary(steps), unknown=unknown)

    # ---- the steps ------------------------------------------------------------------------

    def _preferences(self, rows: list[dict[str, str]]) -> _Step[str]:
        step = self._call(
            self.templates.preferences, dict(history=rows, max_chars=PREFERENCES_MAX_CHARS),
            _Preferences, preferences_schema(), 30 + PREFERENCES_MAX_CHARS // 3,
            '{"preferences": "<short summary>"}',
        )
        summary = step.value.preferences if step.value is not None else None
        return self._fell_back(_Step(summary, step.invocation, step.problem),
                               "no preference summary")

    def _representative(
        self, rows: list[dict[str, str]], preferences: str
    ) -> _Step[list[dict[str, str]]]:
        labels = history_labels(len(rows))
        n = min(self.n_representative, len(rows))
        step = self._call(
            self.templates.representative,
            dict(history=[{**r, "label": lab} for lab, r in zip(labels, rows, strict=True)],
                 preferences=preferences, n=n),
            _Representative, representative_schema(labels, n), 10 + 6 * n,
            '{"representative": ["H1", ...]}', context={"labels": labels, "n": n},
        )
        if step.value is not None:
            by_label = dict(zip(labels, rows, strict=True))
            return _Step([by_label[lab] for lab in step.value.representative], step.invocation)
        failed: _Step[list[dict[str, str]]] = _Step(None, step.invocation, step.problem)
        return self._fell_back(failed, f"the {min(self.n_representative, len(rows))} most "
                                       "recent items")

    def _fallback_items(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        """Without a usable step 2: the most recent items, most recent first (recency is
        the strongest single signal in sequential recommendation)."""
        return rows[::-1][: self.n_representative]

    @staticmethod
    def _fell_back(step: _Step[T], instead: str) -> _Step[T]:
        if step.value is not None:
            return step
        note = f"unusable answer ({step.problem}); used {instead}"
        return _Step(None, step.invocation.model_copy(update={"fallback": note}), step.problem)

    def _call(
        self, template: str, variables: dict[str, Any], answer: type[M], schema: JsonSchema,
        max_tokens: int, example: str, context: dict[str, Any] | None = None,
    ) -> _Step[M]:
        """A step that only feeds step 3: an answer still unusable after the re-ask is a
        step without value (for a fallback), not an error; transport errors still raise."""
        prompt = self.prompts.render(template, **variables)
        try:
            value, invocation = structured_call(
                self.client, self.prompts, prompt, answer, schema=schema, example=example,
                max_tokens=max_tokens, temperature=self.temperature, seed=self.seed,
                context=context,
            )
        except StructuredResponseError as e:
            return _Step(None, e.invocation, e.problem)
        return _Step(value, invocation)

    def _summary(self, steps: list[Invocation]) -> Invocation:
        """The whole request as one invocation: step 3's prompt and answer, every step's
        tokens and time, attempts of the most re-asked step (>1 means a re-ask happened),
        and a hash over the three templates."""
        names = [self.templates.preferences, self.templates.representative,
                 self.templates.rank]
        digest = hashlib.sha256("".join(self.prompts.source_hash(n) for n in names).encode())
        last = steps[-1]
        usage = Usage()
        for step in steps:
            usage = usage + step.usage
        return Invocation(
            template="+".join(names), template_hash=digest.hexdigest()[:12],
            model=self.client.model, messages=last.messages, raw=last.raw,
            attempts=max(s.attempts for s in steps), usage=usage,
            latency_s=sum(s.latency_s for s in steps), steps=steps,
        )

