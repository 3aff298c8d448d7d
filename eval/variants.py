"""From a `[[variants]]` table to a ListwiseRanker: template, demonstrations, explain, sampling.

Nothing here knows a particular variant: any template in the prompt library with any
parameters is a variant.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from eval.config import VariantConfig
from eval.protocols import Split, llmrank_candidates, sample_users
from recagent.llm import JsonSchema, LLMClient, Message
from recagent.prompts import PromptLibrary
from recagent.ranking import ListwiseRanker
from recagent.types import Completion, Demonstration, Item

SHORT_REASON_CHARS = 8
"""With explain off, a reason is a few words: decoding time is most of an LLM call here."""
SHORT_TOKENS_PER_ITEM = 24


class ShortReasons:
    """An LLMClient that caps every `reason` string in the requested JSON schema.

    The ranker's schema requires a reason per item; a grammar-constrained server then
    cannot spend tokens on prose, which is what "explain off" means for throughput."""

    def __init__(self, inner: LLMClient, max_chars: int = SHORT_REASON_CHARS) -> None:
        self.inner = inner
        self.max_chars = max_chars

    @property
    def model(self) -> str:
        return self.inner.model

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
        if schema is not None:
            schema = copy.deepcopy(schema)
            _cap_reasons(schema, self.max_chars)
        return self.inner.complete(messages, schema=schema, max_tokens=max_tokens,
                                   temperature=temperature, top_logprobs=top_logprobs, seed=seed)


def _cap_reasons(node: Any, max_chars: int) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(props.get("reason"), dict):
            props["reason"]["maxLength"] = max_chars
        for value in node.values():
            _cap_reasons(value, max_chars)
    elif isinstance(node, list):
        for value in node:
            _cap_reasons(value, max_chars)


def demonstrations(
    splits: Sequence[Split], items: dict[str, Item], pool: Sequence[str], *, k: int,
    exclude: set[str], seed: int, n_history: int = 5, n_candidates: int = 5,
) -> list[Demonstration]:
    """k worked examples from users outside the evaluated sample: their recent history,
    a few candidates, and the item they actually chose next."""
    if k == 0:
        return []
    donors = [s for s in splits if s.user not in exclude]
    chosen = set(sample_users([s.user for s in donors], k, seed + 1))
    demos = []
    for split in (s for s in donors if s.user in chosen):
        candidates = llmrank_candidates(split, pool, n_negatives=n_candidates - 1, seed=seed)
        history = [items[r.item].title for r in split.history[-n_history:]]
        demos.append(Demonstration(
            history_titles=history,
            candidate_titles=[items[c].title for c in candidates],
            chosen_title=items[split.target].title,
            reason=f"Fits the taste shown by {history[-1]}.",
        ))
    return demos


def build_ranker(
    variant: VariantConfig, client: LLMClient, prompts: PromptLibrary,
    demos: Sequence[Demonstration], *, seed: int,
) -> ListwiseRanker:
    """The ranker for one variant; explain=False caps reasons (see ShortReasons)."""
    if not variant.explain:
        client = ShortReasons(client)
    return ListwiseRanker(
        client, prompts, template=variant.template, demonstrations=demos,
        max_history=variant.max_history, temperature=variant.temperature, seed=seed,
        tokens_per_item=60 if variant.explain else SHORT_TOKENS_PER_ITEM,
    )
