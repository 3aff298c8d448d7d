"""Rating prediction: a user's few rated items in, predicted ratings of other items out.

Pointwise prompting in one structured call for all targets of a user (re-asked once when
the answer is unusable, like every structured call): the targets are
labelled with letters, the JSON schema pins the ids to those letters and the ratings to
whole numbers on the scale, so an answer can be missing items but never invent any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from recagent.errors import ConfigError
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import structured_call
from recagent.rank.listwise import labels_for, normalize_label
from recagent.types import Item, Usage


class _Entry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    rating: float


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ratings: list[_Entry]


def rating_schema(labels: Sequence[str], scale_max: int) -> JsonSchema:
    return {
        "type": "object",
        "properties": {"ratings": {
            "type": "array", "minItems": len(labels), "maxItems": len(labels),
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["id", "rating"],
                      "properties": {"id": {"type": "string", "enum": list(labels)},
                                     "rating": {"type": "integer", "minimum": 1,
                                                "maximum": scale_max}}},
        }},
        "required": ["ratings"], "additionalProperties": False,
    }


@dataclass(frozen=True)
class RatingPrediction:
    ratings: dict[str, float]
    """Item id → predicted rating, for the targets the model rated within the scale."""
    missing: list[str]
    """Targets the answer did not rate (or rated off the scale)."""
    usage: Usage
    latency_s: float
    raw: str
    attempts: int = 1
    """Calls made: 2 when the first answer was unusable and re-asked."""


class RatingPredictor:
    """Predicts ratings on a 1..scale_max scale from a few (item, rating) examples."""

    def __init__(
        self, client: LLMClient, prompts: PromptLibrary, *, template: str = "rate",
        scale_max: int = 5, temperature: float = 0.0, seed: int | None = 0,
    ) -> None:
        if scale_max < 2:
            raise ConfigError(f"scale_max must be at least 2, got {scale_max}")
        self.client, self.prompts, self.template = client, prompts, template
        self.scale_max, self.temperature, self.seed = scale_max, temperature, seed

    def predict(
        self, examples: Sequence[tuple[Item, float]], targets: Sequence[Item]
    ) -> RatingPrediction:
        """Raises ResponseError (with the raw answers) when the answer is still not JSON of
        the schema's shape after one re-ask; a partial answer is returned with its
        `missing` targets."""
        if not targets:
            raise ConfigError("nothing to rate: give at least one target item")
        labels = labels_for(len(targets))
        by_label = {lab: t.id for lab, t in zip(labels, targets, strict=True)}
        prompt = self.prompts.render(
            self.template, scale_max=self.scale_max,
            examples=[{"text": item.text or item.title, "rating": f"{rating:g}"}
                      for item, rating in examples],
            targets=[{"label": lab, "text": t.text or t.title}
                     for lab, t in zip(labels, targets, strict=True)],
        )
        answer, done = structured_call(
            self.client, self.prompts, prompt, _Answer,
            schema=rating_schema(labels, self.scale_max),
            example=f'{{"ratings": [{{"id": "<letter>", "rating": <1-{self.scale_max}>}}, ...]}}',
            max_tokens=16 + 12 * len(labels), temperature=self.temperature, seed=self.seed,
            failure="unparseable ratings")
        ratings: dict[str, float] = {}
        for entry in answer.ratings:
            item_id = by_label.get(normalize_label(entry.id))
            if item_id is not None and item_id not in ratings \
                    and 1 <= entry.rating <= self.scale_max:
                ratings[item_id] = entry.rating
        return RatingPrediction(
            ratings=ratings, missing=[t.id for t in targets if t.id not in ratings],
            usage=done.usage, latency_s=done.latency_s, raw=done.raw, attempts=done.attempts)
