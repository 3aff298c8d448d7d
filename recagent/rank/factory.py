"""A ranker from a spec: the one factory behind the product's wiring, eval's variants and the
benchmarks. It imports only the rankers (no Chroma, no llama.cpp), so it also runs inside a
vLLM-only environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.errors import ConfigError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.scoring import NEEDS_PROMPT_LOGPROBS, ContinuationScorer
from recagent.rank.demonstrations import DemonstrationSource
from recagent.rank.ensemble import BootstrapRanker, FusionRanker, ShuffledRanker
from recagent.rank.likelihood import LikelihoodRanker, neutral_name
from recagent.rank.listwise import ListwiseRanker, Ranker
from recagent.rank.logprob import Calibration, LogprobRanker
from recagent.rank.nir import NIRRanker
from recagent.types import Demonstration


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


def build_ranker(
    spec: RankerSpec, client: LLMClient, prompts: PromptLibrary,
    demonstrations: Sequence[Demonstration] | DemonstrationSource = (), *, seed: int = 0,
    fusion: dict[str, float] | None = None,
) -> Ranker:
    """The ranker a spec names; `fusion` (source → fitted weight) fuses its scores with the
    candidates' other scores. Few-shot needs `demonstrations` (donors from other users)."""
    if spec.few_shot and not demonstrations:
        raise ConfigError(f"few_shot = {spec.few_shot} needs demonstrations from other users, "
                          "and none were given")
    ranker: Ranker
    if spec.method == "logprob":
        ranker = LogprobRanker(client, prompts, template=spec.template or "rank_logprob",
                               explain=spec.explain, max_history=spec.max_history, seed=seed,
                               calibrate=spec.calibrate)
    elif spec.method == "likelihood":
        if not isinstance(client, ContinuationScorer):
            raise ConfigError(f"method 'likelihood': {NEEDS_PROMPT_LOGPROBS}, and "
                              f"{type(client).__name__} cannot score continuations")
        ranker = LikelihoodRanker(client, prompts, template=spec.template or "likelihood",
                                  max_history=spec.max_history)
    elif spec.method == "nir":
        ranker = NIRRanker(client, prompts, max_history=spec.max_history,
                           temperature=spec.temperature, seed=seed, explain=spec.explain)
    else:
        default = "rank_few_shot" if spec.few_shot else "rank_zero_shot"
        ranker = ListwiseRanker(
            client, prompts, template=spec.template or default,
            demonstrations=demonstrations, max_history=spec.max_history,
            temperature=spec.temperature, seed=seed, explain=spec.explain,
        )
    prompts.check(ranker_templates(spec))
    if spec.bootstrap:
        ranker = BootstrapRanker(ranker, spec.bootstrap, seed=seed)
    elif spec.order:
        ranker = ShuffledRanker(ranker, spec.order, seed=seed)
    return FusionRanker(ranker, fusion) if fusion else ranker


def ranker_templates(spec: RankerSpec) -> list[str]:
    """The prompt templates a ranker spec will render: named before any call is paid for."""
    if spec.method == "nir":
        return ["nir_preferences", "nir_representative", "nir_rank"]
    if spec.method == "logprob":
        return [spec.template or "rank_logprob"]
    if spec.method == "likelihood":
        template = spec.template or "likelihood"
        return [template, neutral_name(template)]
    return [spec.template or ("rank_few_shot" if spec.few_shot else "rank_zero_shot")]
