"""Several candidate sources fused into one list by weighted reciprocal-rank fusion.

RRF needs only ranks, so sources whose scores live on different scales (cosine,
co-occurrence sums, interaction counts) combine without calibration:
fused(item) = Σ_source weight / (k_rrf + rank + 1), rank counted from 0 in that source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from retrieval.errors import ConfigError
from retrieval.types import Candidate, Retriever, UserHistory

RRF = "rrf"
"""Key of the fused score in a fused Candidate's scores_by_source."""


class HybridRetriever:
    """Asks every source with a positive weight for `depth` items and fuses the lists.

    A fused Candidate keeps each source's own score under the source's name plus the
    fused one under 'rrf'; `score` is the fused score and `rank` the fused position.
    `nearest_history_id` comes from the 'semantic' source when it proposed the item,
    else from the first source that names one. Weights left out default to 1; a source
    with weight 0 is not queried. Ties keep the order of first proposal (sources in the
    given order).
    """

    source = "hybrid"

    def __init__(
        self, sources: Mapping[str, Retriever], weights: Mapping[str, float] | None = None,
        *, k_rrf: int = 60, depth: int = 100,
    ) -> None:
        if not sources:
            raise ConfigError("a hybrid retriever needs at least one source")
        if RRF in sources:
            raise ConfigError(f"{RRF!r} is reserved for the fused score; rename that source")
        given = dict(weights or {})
        unknown = sorted(set(given) - set(sources))
        if unknown:
            raise ConfigError(f"weights name unknown sources {unknown}; sources are "
                              f"{sorted(sources)}")
        bad = {k: w for k, w in given.items() if not math.isfinite(w) or w < 0}
        if bad:
            raise ConfigError(f"weights must be finite and >= 0, got {bad}")
        self.weights = {name: float(given.get(name, 1.0)) for name in sources}
        if not any(self.weights.values()):
            raise ConfigError("all fusion weights are 0: give at least one source a weight > 0")
        if k_rrf < 0:
            raise ConfigError(f"k_rrf must be >= 0, got {k_rrf}")
        if depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}")
        self.sources = {name: r for name, r in sources.items() if self.weights[name] > 0}
        self.k_rrf = k_rrf
        self.depth = depth

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        return self.fuse(self.gather(history, n, where=where), n)

    def gather(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> dict[str, list[Candidate]]:
        """Each queried source's own list, max(depth, n) long: what `fuse` combines and
        what per-source recall is measured on."""
        depth = max(self.depth, n)
        return {name: r.retrieve(history, depth, where=where) for name, r in self.sources.items()}

    def fuse(self, lists: Mapping[str, list[Candidate]], n: int) -> list[Candidate]:
        """The top n of the weighted RRF of `lists` (source name → list, best first)."""
        fused: dict[str, float] = {}
        proposals: dict[str, dict[str, Candidate]] = {}
        for name, found in lists.items():
            weight = self.weights[name]
            for rank, c in enumerate(found):
                fused[c.item.id] = fused.get(c.item.id, 0.0) + weight / (self.k_rrf + rank + 1)
                proposals.setdefault(c.item.id, {}).setdefault(name, c)
        order = sorted(fused, key=lambda i: -fused[i])[:n]  # stable: ties keep first proposal
        return [self._candidate(proposals[i], fused[i], rank) for rank, i in enumerate(order)]

    @staticmethod
    def _candidate(by_source: dict[str, Candidate], score: float, rank: int) -> Candidate:
        first = next(iter(by_source.values()))
        semantic = by_source.get("semantic")
        nearest = semantic.nearest_history_id if semantic is not None else next(
            (c.nearest_history_id for c in by_source.values() if c.nearest_history_id), None)
        return Candidate(item=first.item, rank=rank, score=score,
                         scores_by_source={**{s: c.score for s, c in by_source.items()},
                                           RRF: score},
                         nearest_history_id=nearest)
