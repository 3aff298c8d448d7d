"""A ranker from a spec: the one factory behind the product's wiring, eval's variants and the
benchmarks. It imports only the rankers (no Chroma, no llama.cpp), so it also runs inside a
vLLM-only environment."""

from __future__ import annotations

from collections.abc import Sequence

from recagent.errors import ConfigError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.scoring import NEEDS_PROMPT_LOGPROBS, ContinuationScorer
from recagent.rank.demonstrations import DemonstrationSource
from recagent.rank.ensemble import BootstrapRanker, FusionRanker, ShuffledRanker
from recagent.rank.likelihood import LikelihoodRanker, neutral_name
from recagent.rank.listwise import ListwiseRanker, Ranker
from recagent.rank.logprob import LogprobRanker
from recagent.rank.nir import NIRRanker
from recagent.rank.spec import RankerSpec
from recagent.types import Demonstration

__all__ = ["RankerSpec", "build_ranker", "ranker_templates"]


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
