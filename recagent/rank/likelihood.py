"""Likelihood scoring: rank candidates by how much the user's history makes their titles
more likely, read from the model's prompt logprobs (no generation, nothing to parse).

    score(item) = log P(title | history prompt) - log P(title | neutral prompt)

The second term is the item's prior under the same frame without a history (PMI): without
it, short and famous titles win for every user because they are likely text, not because
this user would watch them. It depends only on the item, so it is asked once per item and
kept in the ranker (a process pays each prior once). Needs a server that returns prompt
logprobs (vLLM); see recagent/llm/scoring.py and docs/methods.md.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence

from recagent.errors import ResponseError
from recagent.llm.prompts import PromptLibrary, RenderedPrompt
from recagent.llm.scoring import Continuations, ContinuationScorer
from recagent.rank.listwise import LLMRanking
from recagent.types import Candidate, Interaction, Invocation, Item


def liked_titles(history: Sequence[tuple[Interaction, Item]], most: int) -> list[str]:
    """The `most` most recent positively felt items' titles (likes, good ratings, bare views),
    oldest first, as the catalog writes them (the same form as the candidates')."""
    liked = [item.title for interaction, item in history if interaction.polarity > 0]
    return liked[-most:] if most > 0 else []


def continuation(item: Item) -> str:
    """The text scored for a candidate; it starts with a space so that the prompt/title
    boundary falls on a token start."""
    return " " + (item.title or item.id)


def neutral_name(template: str) -> str:
    """The neutral frame of a likelihood template: the same frame without the history."""
    return f"{template}_neutral"


def prompt_text(prompt: RenderedPrompt) -> str:
    """A rendered template as plain completion text: its messages' contents, one after the
    other (the likelihood templates have one). No chat template is applied: the title must
    follow the frame directly, as text would in a document."""
    return "\n\n".join(m["content"] for m in prompt.messages)


class LikelihoodRanker:
    """Scores every candidate by PMI of its title with the user's history; never explains
    (the facade explains the chosen items from retrieval evidence)."""

    def __init__(
        self,
        scorer: ContinuationScorer,
        prompts: PromptLibrary,
        *,
        template: str = "likelihood",
        neutral_template: str | None = None,
        max_history: int = 20,
    ) -> None:
        self.scorer = scorer
        self.prompts = prompts
        self.template = template
        self.neutral_template = neutral_template or neutral_name(template)
        """Default: the template's name + '_neutral' (the same frame, no history)."""
        self.max_history = max_history
        self._priors: dict[str, float] = {}
        """Continuation text → its logprob after the neutral prompt."""
        self._lock = threading.Lock()

    @property
    def cached_priors(self) -> int:
        """How many items' neutral terms this ranker holds."""
        with self._lock:
            return len(self._priors)

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        unique = list({c.item.id: c.item for c in candidates}.values())  # first one kept
        texts = [continuation(item) for item in unique]
        prompt = self.prompts.render(self.template,
                                     titles=liked_titles(history, self.max_history))
        scored = self._score(prompt_text(prompt), texts)
        priors, neutral = self._priors_of(texts)
        scores = {item.id: value - priors[text]
                  for item, text, value in zip(unique, texts, scored.logprobs, strict=True)}
        # Ties keep the given candidate order (sorted() is stable).
        ranked = sorted(unique, key=lambda item: -scores[item.id])
        raw = {"history": dict(zip([i.id for i in unique], scored.logprobs, strict=True)),
               "neutral": {item.id: priors[text] for item, text in zip(unique, texts,
                                                                        strict=True)},
               "neutral_asked": len(neutral.logprobs) if neutral else 0}
        usage, latency = scored.usage, scored.latency_s
        if neutral is not None:
            usage, latency = usage + neutral.usage, latency + neutral.latency_s
        invocation = Invocation(
            template=prompt.template, template_hash=prompt.template_hash,
            model=self.scorer.model, messages=list(prompt.messages), raw=json.dumps(raw),
            attempts=1, usage=usage, latency_s=latency,
        )
        return LLMRanking(order=[(item.id, None) for item in ranked[:k]],
                          invocation=invocation, scores=scores)

    def _priors_of(self, texts: list[str]) -> tuple[dict[str, float], Continuations | None]:
        """Every text's neutral term, asking the scorer only for those not yet held (one
        request); the answer of that request, if one was made. Two threads that miss the
        same item at once both ask: the result is the same, only paid twice."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._priors))
        neutral: Continuations | None = None
        if missing:
            prompt = self.prompts.render(self.neutral_template)
            neutral = self._score(prompt_text(prompt), missing)
            with self._lock:
                self._priors.update(zip(missing, neutral.logprobs, strict=True))
        with self._lock:
            return {t: self._priors[t] for t in texts}, neutral

    def _score(self, prefix: str, texts: list[str]) -> Continuations:
        if not texts:
            return Continuations(logprobs=[])
        scored = self.scorer.continuation_logprobs(prefix, texts)
        if len(scored.logprobs) != len(texts) or not all(
                math.isfinite(v) for v in scored.logprobs):
            raise ResponseError(f"expected {len(texts)} finite continuation logprobs",
                                json.dumps(scored.logprobs), 1)
        return scored
