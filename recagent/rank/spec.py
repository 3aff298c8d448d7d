"""What names a ranker: its method, template and parameters, as data (an eval variant is
one of these). Apart from the rankers themselves, so that the command line and the settings
can read it without importing any ranker or LLM client (the CLI's start-up time)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Calibration = Literal["none", "letters", "candidates"]
"""How a logprob ranking subtracts a content-free prompt's letter prior (rank/logprob.py)."""


class RankerSpec(BaseModel):
    """A ranker: method, template and parameters (an eval variant is one of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["listwise", "logprob", "nir", "likelihood"] = "listwise"
    """listwise: one structured answer with the top k; logprob: every candidate scored from
    the first answer token's logprobs in one forward pass (template default rank_logprob);
    nir: NIR's three calls (preferences, representative items, ranking; recagent/rank/nir.py);
    likelihood: each title's log P after the history minus after a neutral prompt, from prompt
    logprobs (a server such as vLLM; recagent/rank/likelihood.py); it never explains."""
    template: str | None = None
    """Default: rank_zero_shot (listwise; rank_few_shot with few_shot > 0) or rank_logprob
    (logprob); nir has its own three templates; likelihood: "likelihood", and the template's
    name + "_neutral" is its neutral frame."""
    few_shot: Annotated[int, Field(ge=0, le=10)] = 0
    """Listwise: k demonstrations from other users."""
    demos: Literal["random", "similar"] = "random"
    """random: the same seeded donors for every user; similar: per user, the donors whose
    histories overlap most (Jaccard over items). Both skip a donor whose choice is in the
    user's history or candidates."""
    demo_budget: Annotated[int, Field(ge=50, le=8000)] = 1000
    """Most tokens (estimated as characters / 4) the demonstrations may add to a prompt."""
    explain: bool = True
    """False: candidate letters only, no reasons (throughput); logprob: no explanation call."""
    bootstrap: Annotated[int, Field(ge=0, le=20)] = 0
    """Rank this many seeded shuffles of the candidates and aggregate by Borda count."""
    order: Annotated[int, Field(ge=0, le=20)] = 0
    """One pass over the order-th seeded shuffle of the candidates (0: as given; p: the
    order a bootstrap's pass p sees), to measure position sensitivity."""
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_history: Annotated[int, Field(ge=1)] = 20
    """History items shown in the prompt (the most recent)."""
    calibrate: Calibration = "none"
    """Logprob: subtract a content-free prompt's letter prior (recagent/rank/logprob.py):
    "letters" (history and candidates blanked, one call per candidate count) or
    "candidates" (history blanked, one more call per ranking)."""

    @model_validator(mode="after")
    def _method_options(self) -> RankerSpec:
        # An option the method would ignore is an error, like an unknown key.
        if self.few_shot and self.method != "listwise":
            raise ValueError(f"few_shot applies to method 'listwise' only, not {self.method!r}")
        if self.demos != "random" and not self.few_shot:
            raise ValueError(f"demos = {self.demos!r} needs few_shot > 0")
        if self.order and self.bootstrap:
            raise ValueError("order (one pass over one shuffle) and bootstrap (several "
                             "passes) exclude each other")
        if self.calibrate != "none" and self.method != "logprob":
            raise ValueError(f"calibrate applies to method 'logprob' only, not {self.method!r}")
        if self.method == "likelihood" and (self.bootstrap or self.order):
            raise ValueError("likelihood scores do not depend on the candidates' order; "
                             "bootstrap and order would only repeat them")
        if self.method == "nir" and self.template is not None:
            raise ValueError("method 'nir' uses its own templates (nir_preferences, "
                             "nir_representative, nir_rank); leave template out")
        return self
