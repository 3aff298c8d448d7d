"""From a `[[variants]]` table to a ListwiseRanker: template, demonstrations, explain, sampling.

Nothing here knows a particular variant: any template in the prompt library with any
parameters is a variant.
"""

from __future__ import annotations

from collections.abc import Sequence

from eval.config import VariantConfig
from eval.protocols import Split, llmrank_candidates, sample_users
from recagent.ensemble import BootstrapRanker
from recagent.llm import LLMClient
from recagent.logprob_ranking import LogprobRanker
from recagent.prompts import PromptLibrary
from recagent.ranking import ListwiseRanker, Ranker
from recagent.types import Demonstration, Item


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
) -> Ranker:
    """The ranker for one variant; explain=False asks for candidate letters only."""
    ranker: Ranker
    if variant.method == "logprob":
        ranker = LogprobRanker(client, prompts, template=variant.template or "rank_logprob",
                               explain=variant.explain, max_history=variant.max_history,
                               seed=seed)
    else:
        ranker = ListwiseRanker(
            client, prompts, template=variant.template or "rank_zero_shot",
            demonstrations=demos, max_history=variant.max_history,
            temperature=variant.temperature, seed=seed, explain=variant.explain,
        )
    return BootstrapRanker(ranker, variant.bootstrap, seed=seed) if variant.bootstrap else ranker
