"""The `[item_vectors]` table (which models' item vectors a run computes and ranks with) and
the `[item_coldstart]` table, which adds the cold items and the judgement rule, written
before the run: the report checks the rule exactly as these fields state it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.llm.backends.llamacpp import Pooling
from retrieval.item_map import RIDGE_GRID

POP_ATTRIBUTES = "pop_attributes"
MINILM_TEXT = "minilm_text"
MINILM_MAPPED = "minilm_mapped"
MINILM_FUSION = "minilm_fusion"
LLM_TEXT = "llm_text"
LLM_MAPPED = "llm_mapped"
LLM_FUSION = "llm_fusion"
ALL_FUSION = "all_fusion"
NO_LLM_FUSION = "nollm_fusion"
"""all_fusion without any model's rows: what the LLM's share is judged against."""
MINILM_CENTRED = "minilm_centred"
LLM_CENTRED = "llm_centred"
EXPLORATORY = (MINILM_CENTRED, LLM_CENTRED)
"""Rows added after a smoke run showed raw LLM-vector similarity below random (a decoder's
mean-pooled states share one large common direction): not part of the committed rule."""


def llm_row(kind: str, model: str) -> str:
    """The row name of an LLM-derived ranker of `model` ('llm_text.smollm2-135m')."""
    return f"{kind}.{model}"


def item_rows(models: Sequence[str]) -> list[str]:
    """Every row ColdStartRankers builds for these models, in its order."""
    rows = [POP_ATTRIBUTES, MINILM_TEXT, MINILM_MAPPED, MINILM_FUSION, NO_LLM_FUSION,
            MINILM_CENTRED]
    for model in models:
        rows += [llm_row(kind, model)
                 for kind in (LLM_TEXT, LLM_MAPPED, LLM_FUSION, ALL_FUSION, LLM_CENTRED)]
    return rows


def _ridge_grid() -> list[float]:
    return list(RIDGE_GRID)


class ItemVectorsConfig(BaseModel):
    """Item-side features: each model's item vectors (one cached pass over the catalog),
    ranked by similarity and by a map into the collaborative space
    (eval/item_coldstart_rankers.py). On the llmrank and pipeline protocols their rows
    can be fused like baselines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: list[str] = Field(default_factory=lambda: ["smollm2-135m"])
    """Models whose item vectors (llama.cpp embedding mode, one cached pass over the
    catalog each) are ranked by similarity and by the map: presets or .gguf paths."""
    pooling: Pooling = "mean"
    threads: Annotated[int, Field(ge=1)] = 1
    """llama.cpp threads of the catalog pass (one is fastest on a shared CPU)."""
    ridge: list[Annotated[float, Field(gt=0)]] = Field(default_factory=_ridge_grid, min_length=1)
    """Ridge penalties tried by cross-validation on warm items for every linear map."""
    rows: list[str] | None = None
    """The rows to run and report (None: every row, `item_rows`): e.g. only those a variant
    fuses, which keeps the committed run files small."""

    @model_validator(mode="after")
    def _known_rows(self) -> ItemVectorsConfig:
        unknown = set(self.rows or ()) - set(item_rows(self.models))
        if unknown:
            raise ValueError(f"rows {sorted(unknown)} are not rows of models {self.models} "
                             f"(known: {item_rows(self.models)})")
        return self

    @property
    def names(self) -> list[str]:
        """The rows this run builds."""
        return self.rows if self.rows is not None else item_rows(self.models)


class ItemColdStartConfig(ItemVectorsConfig):
    cold_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """The newest share of the items (by first interaction) held out as cold."""
    judged_setting: int | str = "full"
    """The history setting the rule is judged on (an entry of protocol.history_lengths)."""
    min_relative_gain: Annotated[float, Field(ge=0)] = 0.10
    """Rule: the best LLM-derived ranker's NDCG@10 over the best MiniLM-only one's, minus 1."""
    max_p: Annotated[float, Field(gt=0, lt=1)] = 0.05
    """Rule: the paired t-tests' significance level."""
    rule: str = ""
    """The rule in words, as committed before the run (copied into the report)."""
