"""Listwise LLM ranking: label the candidates, ask for the top k, parse, re-ask once.

The model sees short letter labels instead of catalog ids (fewer tokens, and a JSON
schema enum can pin its choices to the candidate set). What it answers is parsed
into `RankingAnswer`; mapping labels back to candidates and checking them is
`repair.py`'s job, so a bad id is repaired and recorded, not fatal.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import structured_call
from recagent.rank.demonstrations import DemonstrationSource, check_demonstration
from recagent.types import Candidate, Demonstration, Interaction, Invocation, Item

REASON_MAX_CHARS = 160


class RankedEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(min_length=1, max_length=64)]
    reason: str = ""


class RankingAnswer(BaseModel):
    """The schema the LLM fills: ranked labels with a short reason each."""

    model_config = ConfigDict(extra="ignore")
    ranking: list[RankedEntry]


def labels_for(n: int) -> list[str]:
    """A, B, … Z, then AA, AB, …: short, distinct, and mostly single tokens."""
    letters = string.ascii_uppercase
    out = list(letters[:n])
    for first in letters:
        if len(out) >= n:
            break
        out.extend(first + second for second in letters[: n - len(out)])
    return out


def normalize_label(raw: str) -> str:
    """'[b]', ' B ', 'b.' → 'B': tolerate the formatting slips of models without schemas."""
    return raw.strip().strip("[]().:").strip().upper()


def answer_schema(labels: Sequence[str], k: int, *, explain: bool = True) -> JsonSchema:
    """JSON schema with the labels as an enum and bounded sizes, so a small model cannot
    invent ids or run away inside a field. Without `explain` the entries carry no reason:
    decoding is most of a call's cost on a CPU, and an order needs none."""
    entry: JsonSchema = {
        "type": "object",
        "properties": {"id": {"type": "string", "enum": list(labels)}},
        "required": ["id"],
        "additionalProperties": False,
    }
    if explain:
        entry["properties"]["reason"] = {"type": "string", "minLength": 1,
                                         "maxLength": REASON_MAX_CHARS}
        entry["required"] = ["id", "reason"]
    return {
        "type": "object",
        "properties": {
            "ranking": {
                "type": "array",
                "items": entry,
                "minItems": k,
                "maxItems": k,
            }
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class LLMRanking:
    """What a ranker proposes: candidate ids in order with reasons, plus its audit trail.

    `unknown` holds answers that named no candidate (kept for the trace, never shown).
    A reason of None means the ranker was not asked to explain: the facade explains the
    item from retrieval evidence instead, and that is not a repair."""

    order: list[tuple[str, str | None]]
    invocation: Invocation
    unknown: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    """Candidate id → the ranker's own score (higher is better), for rankers that have one
    for every candidate (e.g. logprobs); empty for listwise answers, which are only an order."""


class Ranker(Protocol):
    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking: ...


def describe_history(history: Sequence[tuple[Interaction, Item]]) -> list[dict[str, str]]:
    """Template rows for the history: text and how the user felt about it."""
    rows = []
    for interaction, item in history:
        if interaction.liked is not None:
            feeling = "liked" if interaction.liked else "disliked"
        elif interaction.rating is not None:
            feeling = f"rated {interaction.rating:g}/5"
        else:
            feeling = "watched"
        rows.append({"text": item.text or item.title, "feeling": feeling})
    return rows


def demonstration_vars(demo: Demonstration, explain: bool = True) -> dict[str, Any]:
    """A few-shot example in the same shape as the real task, with its answer as JSON."""
    labels = labels_for(len(demo.candidate_titles))
    chosen = labels[demo.candidate_titles.index(demo.chosen_title)]
    entry = {"id": chosen, "reason": demo.reason} if explain else {"id": chosen}
    answer = {"ranking": [entry]}
    return {
        "history": [{"text": t, "feeling": "liked"} for t in demo.history_titles],
        "candidates": [{"label": lab, "text": t}
                       for lab, t in zip(labels, demo.candidate_titles, strict=True)],
        "k": 1,
        "answer": json.dumps(answer),
    }


def order_from_answer(
    answer: RankingAnswer, by_label: dict[str, str], *, explain: bool
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Labels back to candidate ids, in the model's order, and the labels that named none.
    Without `explain` every reason is None (the facade explains from retrieval evidence)."""
    order: list[tuple[str, str | None]] = []
    unknown = []
    for entry in answer.ranking:
        item_id = by_label.get(normalize_label(entry.id))
        if item_id is None:
            unknown.append(entry.id)
        else:
            order.append((item_id, entry.reason.strip()[:REASON_MAX_CHARS] if explain else None))
    return order, unknown


def ranking_example(explain: bool) -> str:
    """The answer's JSON shape, shown again when a ranking is re-asked."""
    entry = '{"id": "<letter>", "reason": "<short reason>"}' if explain else '{"id": "<letter>"}'
    return f'{{"ranking": [{entry}, ...]}}'


def tokens_per_item(explain: bool) -> int:
    """Answer tokens to allow per ranked item: an id and a short reason, or the id alone."""
    return 60 if explain else 8


class ListwiseRanker:
    """LLMRank-style listwise ranking by one structured LLM call (plus one re-ask)."""

    def __init__(
        self,
        client: LLMClient,
        prompts: PromptLibrary,
        *,
        template: str = "rank_zero_shot",
        demonstrations: Sequence[Demonstration] | DemonstrationSource = (),
        max_history: int = 20,
        temperature: float = 0.0,
        seed: int | None = 0,
        explain: bool = True,
    ) -> None:
        # Fixed demonstrations are the same in every prompt; a source (e.g. a
        # DemonstrationSelector) is asked per request, with this history and candidates.
        self.source: DemonstrationSource | None = None
        self.demonstrations: list[Demonstration] = []
        if isinstance(demonstrations, DemonstrationSource):
            self.source = demonstrations
        else:
            self.demonstrations = list(demonstrations)
        for demo in self.demonstrations:
            check_demonstration(demo)
        self.client = client
        self.prompts = prompts
        self.template = template
        self.max_history = max_history
        self.temperature = temperature
        self.seed = seed
        self.explain = explain
        self.tokens_per_item = tokens_per_item(explain)

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        labels = labels_for(len(candidates))
        by_label = {lab: c.item.id for lab, c in zip(labels, candidates, strict=True)}
        demos = self.demonstrations
        if self.source is not None:
            demos = self.source.select(history, candidates)
            for demo in demos:
                check_demonstration(demo)
        prompt = self.prompts.render(
            self.template,
            history=describe_history(history[-self.max_history:]),
            candidates=[{"label": lab, "text": c.item.text or c.item.title}
                        for lab, c in zip(labels, candidates, strict=True)],
            k=k,
            explain=self.explain,
            demonstrations=[demonstration_vars(d, self.explain) for d in demos],
        )
        answer, invocation = structured_call(
            self.client, self.prompts, prompt, RankingAnswer,
            schema=answer_schema(labels, k, explain=self.explain),
            example=ranking_example(self.explain), max_tokens=40 + self.tokens_per_item * k,
            temperature=self.temperature, seed=self.seed, failure="unparseable ranking",
        )
        order, unknown = order_from_answer(answer, by_label, explain=self.explain)
        return LLMRanking(order=order, invocation=invocation, unknown=unknown)
