"""The LLM words the evidence: one short sentence per item, for the whole list in one call.

The prompt (`prompts/explain_items.j2`) shows each item's evidence only (the liked items
that brought it, the share of people who liked both, the genres and era they share, how
retrieval found it), numbered; the answer is bounded JSON (`explanations_schema`):
exactly one entry per number, each sentence at most `SENTENCE_MAX_CHARS`. Whether a
sentence may ship is the checker's decision, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from recagent.explain.form import MAX_WORDS
from recagent.explain.templates import CONTENT_SOURCES, display_title
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import structured_call
from recagent.types import Evidence, Invocation

TEMPLATE = "explain_items"
ITEM_TEMPLATE = "_explain_item"
"""One item's evidence lines, included by TEMPLATE for each item."""
SENTENCE_MAX_CHARS = 200
TOKENS_PER_ITEM = 70
"""A sentence of SENTENCE_MAX_CHARS is about 50 tokens; the JSON around it about 15."""
EXAMPLE = '{"explanations": [{"id": "1", "sentence": "<one short sentence>"}, ...]}'


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    sentence: str = ""


class ExplanationsAnswer(BaseModel):
    """The schema the LLM fills: a sentence per numbered item."""

    model_config = ConfigDict(extra="ignore")
    explanations: list[_Entry]


def explanations_schema(n: int) -> JsonSchema:
    """Numbers 1..n as an enum, one entry each, sentences bounded."""
    return {
        "type": "object",
        "properties": {
            "explanations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "enum": [str(i) for i in range(1, n + 1)]},
                        "sentence": {"type": "string", "minLength": 1,
                                     "maxLength": SENTENCE_MAX_CHARS},
                    },
                    "required": ["id", "sentence"],
                    "additionalProperties": False,
                },
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["explanations"],
        "additionalProperties": False,
    }


def prompt_items(evidence: Sequence[Evidence]) -> list[dict[str, Any]]:
    """Template rows: each item's evidence as plain values (the template words them)."""
    rows = []
    for n, e in enumerate(evidence, 1):
        content = any(s in e.sources for s in CONTENT_SOURCES) or not e.sources
        because = []
        for link in e.because:
            era = None
            if e.year is not None and link.same_year:
                era = str(e.year)
            elif e.year is not None and link.same_decade:
                era = f"the {e.year - e.year % 10}s"
            because.append({
                "title": display_title(link.title),
                "share": None if link.strength is None else f"{round(link.strength * 100)}%",
                "shared_genres": ", ".join(link.shared_genres),
                "era": era,
                "nearest": (None if not link.nearest else "content" if content else "people"),
            })
        rows.append({"id": str(n), "title": display_title(e.title),
                     "genres": ", ".join(e.genres), "because": because,
                     "sources": list(e.sources), "popularity": e.popularity})
    return rows


def evidence_lines(prompts: PromptLibrary, evidence: Sequence[Evidence]) -> list[tuple[str, ...]]:
    """Each item's lines as the prompt showed them (ITEM_TEMPLATE rendered alone): what a
    sentence must not merely copy."""
    return [tuple(line.strip(" -") for line in prompts.render_text(ITEM_TEMPLATE, item=row)
                  .splitlines() if line.strip())
            for row in prompt_items(evidence)]


def write(
    client: LLMClient,
    prompts: PromptLibrary,
    evidence: Sequence[Evidence],
    *,
    template: str = TEMPLATE,
    temperature: float = 0.0,
    seed: int | None = 0,
) -> tuple[dict[int, str], Invocation]:
    """Position → the LLM's sentence (stripped; the first answer for a number wins), and
    the call's audit record. Raises what `structured_call` raises (StructuredResponseError
    after the re-ask, TransportError, LLMError, ConfigError)."""
    prompt = prompts.render(template, items=prompt_items(evidence), max_words=MAX_WORDS)
    answer, invocation = structured_call(
        client, prompts, prompt, ExplanationsAnswer, schema=explanations_schema(len(evidence)),
        example=EXAMPLE, max_tokens=20 + TOKENS_PER_ITEM * len(evidence),
        temperature=temperature, seed=seed, failure="unusable explanations",
    )
    out: dict[int, str] = {}
    for entry in answer.explanations:
        key = entry.id.strip().lstrip("#").rstrip(".")
        if key.isdigit() and 1 <= int(key) <= len(evidence) and int(key) - 1 not in out:
            out[int(key) - 1] = entry.sentence.strip()[:SENTENCE_MAX_CHARS]
    return out, invocation
