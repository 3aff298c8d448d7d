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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recagent.errors import ResponseError
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import (
    LLMRanking,
    RankingAnswer,
    answer_schema,
    describe_history,
    labels_for,
    normalize_label,
    order_from_answer,
)
from recagent.types import Candidate, Interaction, Invocation, Item, Usage

PREFERENCES_MAX_CHARS = 240
"""Longest step-1 summary, in the schema and cut to it when a server ignores maxLength."""

T = TypeVar("T")


class _Preferences(BaseModel):
    model_config = ConfigDict(extra="ignore")
    preferences: Annotated[str, Field(min_length=1)]


class _Representative(BaseModel):
    model_config = ConfigDict(extra="ignore")
    representative: list[str]


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


def parse_preferences(raw: str) -> str:
    text = _Preferences.model_validate_json(raw).preferences.strip()
    if not text:
        raise ValueError("preferences: empty summary")
    return text[:PREFERENCES_MAX_CHARS]


def parse_representative(raw: str, labels: Sequence[str], n: int) -> list[str]:
    """Known labels, first mention only, at most n; none at all is an error (re-asked)."""
    known, picked = set(labels), []
    for label in _Representative.model_validate_json(raw).representative:
        label = normalize_label(label)
        if label in known and label not in picked:
            picked.append(label)
    if not picked:
        raise ValueError(f"representative: no history label among {', '.join(labels)}")
    return picked[:n]


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
        self.tokens_per_item = 60 if explain else 8

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
        final = self._call(
            self.templates.rank,
            dict(preferences=preferences, representative=representative, k=k,
                 explain=self.explain,
                 candidates=[{"label": lab, "text": c.item.text or c.item.title}
                             for lab, c in zip(labels, candidates, strict=True)]),
            answer_schema(labels, k, explain=self.explain), 40 + self.tokens_per_item * k,
            RankingAnswer.model_validate_json,
            '{"ranking": [{"id": "<letter>"' + (', "reason": "<short reason>"' if self.explain
                                                 else "") + f"}}, ...]}} with {k} entries",
        )
        steps.append(final.invocation)
        if final.value is None:
            raise ResponseError(f"unparseable ranking: {final.problem}", final.invocation.raw,
                                final.invocation.attempts)
        order, unknown = order_from_answer(final.value, by_label, explain=self.explain)
        return LLMRanking(order=order, invocation=self._summary(steps), unknown=unknown)

    # ---- the steps ------------------------------------------------------------------------

    def _preferences(self, rows: list[dict[str, str]]) -> _Step[str]:
        step = self._call(
            self.templates.preferences, dict(history=rows, max_chars=PREFERENCES_MAX_CHARS),
            preferences_schema(), 30 + PREFERENCES_MAX_CHARS // 3, parse_preferences,
            '{"preferences": "<short summary>"}',
        )
        return self._fell_back(step, "no preference summary")

    def _representative(
        self, rows: list[dict[str, str]], preferences: str
    ) -> _Step[list[dict[str, str]]]:
        labels = history_labels(len(rows))
        n = min(self.n_representative, len(rows))
        step = self._call(
            self.templates.representative,
            dict(history=[{**r, "label": lab} for lab, r in zip(labels, rows, strict=True)],
                 preferences=preferences, n=n),
            representative_schema(labels, n), 10 + 6 * n,
            lambda raw: parse_representative(raw, labels, n),
            '{"representative": ["H1", ...]}',
        )
        if step.value is not None:
            by_label = dict(zip(labels, rows, strict=True))
            return _Step([by_label[lab] for lab in step.value], step.invocation)
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
        self, template: str, variables: dict[str, Any], schema: JsonSchema, max_tokens: int,
        parse: Callable[[str], T], shape: str,
    ) -> _Step[T]:
        """One structured call, re-asked once with the problem; never raises for a bad
        answer (value None), only for transport errors."""
        prompt = self.prompts.render(template, **variables)
        messages = list(prompt.messages)
        usage, latency, raw, problem = Usage(), 0.0, "", ""
        start = time.perf_counter()
        for attempt in (1, 2):
            completion = self.client.complete(
                messages, schema=schema, max_tokens=max_tokens,
                temperature=self.temperature, seed=self.seed,
            )
            usage, latency, raw = usage + completion.usage, latency + completion.latency_s, \
                completion.text
            try:
                value = parse(raw)
            except ValueError as e:  # pydantic's ValidationError is a ValueError
                problem = _problem(e)
                if attempt == 1:
                    messages = [*prompt.messages, {"role": "assistant", "content": raw[:2000]},
                                {"role": "user", "content": "That answer was not valid "
                                 f"({problem}). Reply again with JSON only: {shape}."}]
                continue
            return _Step(value, self._invocation(prompt.template, prompt.template_hash,
                                                 messages, raw, attempt, usage,
                                                 latency or time.perf_counter() - start))
        invocation = self._invocation(prompt.template, prompt.template_hash, messages, raw, 2,
                                      usage, latency or time.perf_counter() - start)
        return _Step(None, invocation, problem)

    def _invocation(self, template: str, template_hash: str, messages: list[dict[str, str]],
                    raw: str, attempts: int, usage: Usage, latency_s: float) -> Invocation:
        return Invocation(template=template, template_hash=template_hash,
                          model=self.client.model, messages=messages, raw=raw,
                          attempts=attempts, usage=usage, latency_s=latency_s)

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


def _problem(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                         for e in error.errors()[:3])
    return str(error)
