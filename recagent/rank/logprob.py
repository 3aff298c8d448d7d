"""Single-pass ranking from logprobs: one forward pass scores every candidate.

The candidates are labelled with single-token letters and the model is asked for one
letter; the `top_logprobs` of its first answer token score all candidates at once. There
is no generation to wait for, nothing to parse and nothing the model can invent: a
label that is not among the top logprobs simply scores lowest. Explanations, if wanted,
are asked for afterwards and only for the final top k, in one structured call (re-asked
once); explanations still unusable after that leave the items to be explained from
retrieval evidence, recorded in the invocation's `fallback`.

Contextual calibration (Zhao et al., 2021): a model prefers some letters whatever the
prompt says (position bias). `calibrate` subtracts the letter logprobs the same prompt
gets with its content replaced by "N/A": "letters" blanks the history and every
candidate (one call per number of candidates, cached in the ranker: a pure letter
prior); "candidates" blanks the history only (one more call per ranking: the prior of
these candidates in this order, which also removes what the model thinks of the titles
regardless of the user).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from recagent.errors import ResponseError
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary, RenderedPrompt
from recagent.llm.structured import StructuredResponseError, structured_call
from recagent.rank.listwise import (
    REASON_MAX_CHARS,
    LLMRanking,
    describe_history,
    labels_for,
    normalize_label,
)
from recagent.rank.spec import Calibration
from recagent.types import Candidate, Completion, Interaction, Invocation, Item

log = logging.getLogger(__name__)


CONTENT_FREE = "N/A"
"""What a content-free prompt shows instead of history rows and candidate texts."""

MAX_TOP_LOGPROBS = 20
"""The OpenAI API's limit; with more candidates than this some labels are never scored."""


class _Reason(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    reason: str = Field(min_length=1)


class _Reasons(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reasons: list[_Reason]


REASONS_EXAMPLE = '{"reasons": [{"id": "<letter>", "reason": "<short reason>"}, ...]}'
"""The explanations' JSON shape, shown again when they are re-asked."""


def label_scores(top: Mapping[str, float], labels: Sequence[str]) -> dict[str, float]:
    """Log-probability per label from one token's top logprobs; tokens that normalise to
    the same label ('B', ' B', '[B') are summed in probability space."""
    wanted = set(labels)
    mass: dict[str, float] = {}
    for token, logprob in top.items():
        label = normalize_label(token)
        if label in wanted:
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    return {label: math.log(p) for label, p in mass.items()}


def calibrated(scores: Mapping[str, float], prior: Mapping[str, float]) -> dict[str, float]:
    """Each scored label's logprob minus its content-free prior; a label the prior did not
    score gets the prior's floor (its lowest logprob - 1), so it is not favoured without
    bound."""
    floor = min(prior.values(), default=0.0) - 1.0
    return {label: lp - prior.get(label, floor) for label, lp in scores.items()}


def reasons_schema(labels: Sequence[str]) -> JsonSchema:
    return {
        "type": "object",
        "properties": {
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "enum": list(labels)},
                        "reason": {"type": "string", "minLength": 1,
                                   "maxLength": REASON_MAX_CHARS},
                    },
                    "required": ["id", "reason"],
                    "additionalProperties": False,
                },
                "minItems": len(labels),
                "maxItems": len(labels),
            }
        },
        "required": ["reasons"],
        "additionalProperties": False,
    }


class LogprobRanker:
    """Scores candidates by the probability that the model names each one first."""

    def __init__(
        self,
        client: LLMClient,
        prompts: PromptLibrary,
        *,
        template: str = "rank_logprob",
        explain: bool = False,
        explain_template: str = "explain_top",
        max_history: int = 20,
        seed: int | None = 0,
        calibrate: Calibration = "none",
    ) -> None:
        self.client = client
        self.prompts = prompts
        self.template = template
        self.explain = explain
        self.explain_template = explain_template
        self.max_history = max_history
        self.seed = seed
        self.calibrate = calibrate
        self._letter_priors: dict[int, dict[str, float]] = {}
        """Number of candidates → the content-free letter prior ("letters")."""

    def rank(
        self, history: Sequence[tuple[Interaction, Item]], candidates: Sequence[Candidate], k: int
    ) -> LLMRanking:
        labels = labels_for(len(candidates))
        rows = describe_history(history[-self.max_history:])
        texts = [c.item.text or c.item.title for c in candidates]
        start = time.perf_counter()
        by_label, completion, prompt = self._letter_logprobs(rows, texts)
        usage, latency, attempts = completion.usage, completion.latency_s, 1
        raw: dict[str, object] = {"top_logprobs": completion.top_logprobs[0]}
        if self.calibrate != "none":
            prior, paid = self._prior(texts)
            if paid is not None:
                usage, latency = usage + paid.usage, latency + paid.latency_s
            raw["prior"] = prior
            by_label = calibrated(by_label, prior)
        floor = min(by_label.values()) - 1.0
        scores = {c.item.id: by_label.get(lab, floor) for lab, c in zip(labels, candidates,
                                                                         strict=True)}
        # Unscored labels keep the given candidate order (sorted() is stable).
        ranked = sorted(range(len(candidates)), key=lambda n: -scores[candidates[n].item.id])
        top = ranked[:k]
        reasons: dict[int, str] = {}
        fallback: str | None = None
        if self.explain:
            by_position, extra = self._explain(rows, [candidates[n] for n in top])
            usage, latency = usage + extra.usage, latency + extra.latency_s
            attempts, fallback = max(attempts, extra.attempts), extra.fallback
            raw["explanations"] = extra.raw
            reasons = {top[pos]: text for pos, text in by_position.items()}
        invocation = Invocation(
            template=prompt.template, template_hash=prompt.template_hash,
            model=self.client.model, messages=list(prompt.messages), raw=json.dumps(raw),
            attempts=attempts, usage=usage, latency_s=latency or time.perf_counter() - start,
            fallback=fallback,
        )
        return LLMRanking(
            order=[(candidates[n].item.id, reasons.get(n)) for n in top],
            invocation=invocation, scores=scores,
        )

    def _letter_logprobs(
        self, rows: list[dict[str, str]], texts: Sequence[str]
    ) -> tuple[dict[str, float], Completion, RenderedPrompt]:
        """One forward pass: each candidate letter's logprob as the first answer token."""
        labels = labels_for(len(texts))
        prompt = self.prompts.render(
            self.template, history=rows,
            candidates=[{"label": lab, "text": text}
                        for lab, text in zip(labels, texts, strict=True)],
        )
        completion = self.client.complete(
            list(prompt.messages), max_tokens=1, temperature=0.0,
            top_logprobs=MAX_TOP_LOGPROBS, seed=self.seed,
        )
        if not completion.top_logprobs:
            raise ResponseError("the server returned no logprobs (it must support "
                                "top_logprobs)", completion.text, 1)
        by_label = label_scores(completion.top_logprobs[0], labels)
        if not by_label:
            raise ResponseError("no candidate letter among the first token's top logprobs",
                                json.dumps(completion.top_logprobs[0]), 1)
        return by_label, completion, prompt

    def _prior(self, texts: Sequence[str]) -> tuple[dict[str, float], Completion | None]:
        """The content-free letter prior, and the call it cost (None: cached)."""
        blank = [{"text": CONTENT_FREE, "feeling": "watched"}]
        if self.calibrate == "candidates":
            prior, paid, _ = self._letter_logprobs(blank, texts)
            return prior, paid
        if len(texts) in self._letter_priors:
            return self._letter_priors[len(texts)], None
        prior, paid, _ = self._letter_logprobs(blank, [CONTENT_FREE] * len(texts))
        self._letter_priors[len(texts)] = prior
        return prior, paid

    def _explain(
        self, rows: list[dict[str, str]], chosen: Sequence[Candidate]
    ) -> tuple[dict[int, str], Invocation]:
        """One structured call for reasons of the final top k. An answer still unusable
        after the re-ask, or a partial one, leaves those items unexplained (the facade
        explains them from retrieval evidence); the unusable one is logged and recorded
        in the returned invocation's `fallback`."""
        labels = labels_for(len(chosen))
        prompt = self.prompts.render(
            self.explain_template, history=rows,
            candidates=[{"label": lab, "text": c.item.text or c.item.title}
                        for lab, c in zip(labels, chosen, strict=True)],
        )
        try:
            answer, invocation = structured_call(
                self.client, self.prompts, prompt, _Reasons, schema=reasons_schema(labels),
                example=REASONS_EXAMPLE, max_tokens=40 + 60 * len(chosen), temperature=0.0,
                seed=self.seed, failure="unusable explanations",
            )
        except StructuredResponseError as e:
            log.warning("explanations unusable, explaining from retrieval evidence: %s", e)
            note = f"unusable explanations ({e.problem}); explained from retrieval evidence"
            return {}, e.invocation.model_copy(update={"fallback": note})
        position = {lab: n for n, lab in enumerate(labels)}
        reasons: dict[int, str] = {}
        for entry in answer.reasons:
            n = position.get(normalize_label(entry.id))
            if n is not None and n not in reasons:
                reasons[n] = entry.reason.strip()[:REASON_MAX_CHARS]
        return reasons, invocation
