"""The `[item_coldstart]` table of an evaluation config (protocol kind "item_coldstart").

It says which items are cold, which models' item vectors compete, and the judgement rule,
written before the run: the report checks the rule exactly as these fields state it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from recagent.llm.backends.llamacpp import Pooling
from retrieval.item_map import RIDGE_GRID


def _ridge_grid() -> list[float]:
    return list(RIDGE_GRID)


class ItemColdStartConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cold_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    """The newest share of the items (by first interaction) held out as cold."""
    models: list[str] = Field(default_factory=lambda: ["smollm2-135m"])
    """Models whose item vectors (llama.cpp embedding mode, one cached pass over the
    catalog each) are ranked by similarity and by the map: presets or .gguf paths."""
    pooling: Pooling = "mean"
    threads: Annotated[int, Field(ge=1)] = 1
    """llama.cpp threads of the catalog pass (one is fastest on a shared CPU)."""
    ridge: list[Annotated[float, Field(gt=0)]] = Field(default_factory=_ridge_grid, min_length=1)
    """Ridge penalties tried by cross-validation on warm items for every linear map."""
    judged_setting: int | str = "full"
    """The history setting the rule is judged on (an entry of protocol.history_lengths)."""
    min_relative_gain: Annotated[float, Field(ge=0)] = 0.10
    """Rule: the best LLM-derived ranker's NDCG@10 over the best MiniLM-only one's, minus 1."""
    max_p: Annotated[float, Field(gt=0, lt=1)] = 0.05
    """Rule: the paired t-tests' significance level."""
    rule: str = ""
    """The rule in words, as committed before the run (copied into the report)."""
