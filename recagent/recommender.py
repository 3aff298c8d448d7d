"""The facade: history in, a ranked and explained list out, never wrong and never silent.

Retrieval proposes candidates, a ranker (usually the LLM) orders them, `gate.assemble`
enforces the rules, and an `Explainer` explains the chosen items from their evidence
(the ranker's own reasons are not shown: nothing checks them). If the ranker fails in
any way, the answer is the retrieval order, marked degraded with the kind of failure,
and counted in `stats`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recagent.errors import (
    ConfigError,
    EmptyCatalogError,
    UnknownItemError,
)
from recagent.explain import Explainer
from recagent.gate import Limits, assemble, no_limits
from recagent.rank.listwise import LLMRanking, Ranker
from recagent.types import (
    Candidate,
    Degradation,
    Interaction,
    Recommendation,
    Repair,
    Trace,
    Usage,
    UserHistory,
)
from retrieval.store import CatalogStore
from retrieval.types import Retriever

log = logging.getLogger(__name__)


@dataclass
class RecommenderStats:
    """Counters per Recommender instance: how often answers needed help."""

    requests: int = 0
    degraded: int = 0
    repaired: int = 0
    reasked: int = 0


class Recommender:
    def __init__(
        self,
        store: CatalogStore,
        retriever: Retriever | None,
        ranker: Ranker | None,
        *,
        n_candidates: int = 20,
        explainer: Explainer | None = None,
    ) -> None:
        """`explainer` None: explanations written by templates from each item's evidence
        (no LLM call, no interaction statistics)."""
        if n_candidates < 1:
            raise ConfigError("n_candidates must be at least 1")
        self.store = store
        self.retriever = retriever
        self.ranker = ranker
        self.n_candidates = n_candidates
        self.explainer = explainer if explainer is not None else Explainer()
        self.stats = RecommenderStats()
        self._feedback: dict[str, dict[str, bool]] = {}
        """user id → item id → liked, newest last: what `feedback` was told since."""

    def feedback(self, user_id: str, item_id: str, liked: bool) -> None:
        """Fresh feedback that the very next list for this user takes into account: the
        item counts as seen (never shown again), and a dislike pushes the retrieval query
        away from it, so items like it fall too; the prompt shows it as liked/disliked."""
        if not user_id:
            raise ConfigError("feedback needs a user id")
        if item_id not in self.store.get([item_id]):
            raise UnknownItemError([item_id])
        items = self._feedback.setdefault(user_id, {})
        items.pop(item_id, None)
        items[item_id] = liked

    def with_feedback(self, history: UserHistory) -> UserHistory:
        """The history with this user's feedback applied: newer than anything in it, and
        replacing an earlier interaction with the same item."""
        fresh = self._feedback.get(history.user_id or "", {})
        if not fresh:
            return history
        kept = [i for i in history.chronological() if i.item_id not in fresh]
        stamps = [i.ts for i in kept if i.ts is not None]
        timed = len(stamps) == len(kept)  # else the given order is the time order
        last = max(stamps, default=0)
        added = [Interaction(item_id=item_id, liked=liked, ts=last + n + 1 if timed else None)
                 for n, (item_id, liked) in enumerate(fresh.items())]
        return history.model_copy(update={"interactions": [*kept, *added]})

    def recommend(
        self,
        history: UserHistory,
        k: int = 10,
        *,
        where: dict[str, Any] | None = None,
        candidates: Sequence[Candidate] | None = None,
        limits: Limits = no_limits,
    ) -> Recommendation:
        """Top-k items for this history; LLM failures give a degraded answer, not an error.

        `candidates` replaces retrieval (evaluation protocols fix them); seen items among
        them are still never returned, nor any item `limits` objects to (the gate drops
        it and tops up in retrieval order). Raises ConfigError (e.g. UnknownItemError)
        only for bad input."""
        history = self.with_feedback(history)
        limit = self.n_candidates if candidates is None else len(candidates)
        if not 1 <= k <= limit:
            raise ConfigError(f"k must be between 1 and the number of candidates ({limit}), "
                              f"got {k}")
        start = time.perf_counter()
        if self.store.count() == 0:
            raise EmptyCatalogError(
                "the catalog is empty; run `recagent ingest --movielens PATH` first"
            )
        ordered = history.chronological()
        items = self.store.get([i.item_id for i in ordered])
        missing = [i.item_id for i in ordered if i.item_id not in items]
        if missing:
            raise UnknownItemError(missing)
        if candidates is None:
            if self.retriever is None:
                raise ConfigError("this recommender has no retriever: pass candidates=")
            candidates = self.retriever.retrieve(history, self.n_candidates, where=where)
        else:
            candidates = [c for c in candidates if c.item.id not in history.seen_ids]
        self.stats.requests += 1
        titles = {i.item_id: items[i.item_id].title for i in ordered}

        ranking: LLMRanking | None = None
        failure: Degradation | None = None
        if self.ranker is not None and candidates:
            try:
                ranking = self.ranker.rank(
                    [(i, items[i.item_id]) for i in ordered], candidates, min(k, len(candidates))
                )
            except ConfigError:
                raise  # the setup is wrong (unknown model, refused key): exit 2, not degraded
            except Exception as e:
                failure = Degradation.of("rank", e)
                log.warning("ranker failed, answering in retrieval order: %s", failure.detail)

        order = ranking.order if ranking else []
        # The ranker's reasons are not shown (ungrounded): the gate only chooses the items,
        # and the explainer explains them from their evidence.
        ranked, repairs = assemble([(item_id, None) for item_id, _ in order], candidates,
                                   history.seen_ids, k, titles, limits=limits)
        by_id = {c.item.id: c for c in candidates}
        chosen = {r.item_id for r in ranked}
        explained = self.explainer.explain(
            [by_id[r.item_id] for r in ranked], [(i, items[i.item_id]) for i in ordered],
            user_id=history.user_id, others=[c for c in candidates if c.item.id not in chosen],
            use_llm=failure is None or failure.reason not in ("deadline", "transport"),
            skipped=None if failure is None else Degradation(
                step="explain", reason=failure.reason,
                detail=f"not asked: the ranking call failed first ({failure.detail})"))
        # 'llm' only where a model's answer placed the item (a fused non-LLM order is not)
        by_llm = ranking is not None and ranking.invocation.attempts > 0
        ranked = [r.model_copy(update={"explanation": sentence, "evidence": evidence,
                                       "source": r.source if by_llm else "retrieval"})
                  for r, sentence, evidence in zip(ranked, explained.sentences,
                                                   explained.evidence, strict=True)]
        if ranking is not None:
            repairs = [Repair(kind="unknown_label", item_id=u,
                              detail=f"dropped {u!r}: not a candidate label")
                       for u in ranking.unknown] + repairs
            if not order:
                failure = Degradation(step="rank", reason="no_valid_candidate",
                                      detail="the model named no valid candidate")
        failed = [f for f in (failure, explained.failure) if f is not None]
        degraded = bool(failed)
        self.stats.degraded += degraded
        self.stats.repaired += bool(repairs)
        inv = ranking.invocation if ranking else None
        self.stats.reasked += bool(inv and inv.attempts > 1)
        trace = Trace(
            template=inv.template if inv else None,
            template_hash=inv.template_hash if inv else None,
            model=inv.model if inv else None,
            attempts=inv.attempts if inv else 0,
            steps=list(inv.steps) if inv else [],
            repaired=bool(repairs),
            repairs=repairs,
            degradations=failed,
            usage=(inv.usage if inv else Usage()) + (
                explained.invocation.usage if explained.invocation else Usage()),
            llm_latency_s=inv.latency_s if inv else 0.0,
            latency_s=time.perf_counter() - start,
            n_candidates=len(candidates),
            explanations=explained.records,
            explanation_counts=explained.counts,
            explain_call=explained.invocation,
        )
        return Recommendation(items=ranked, trace=trace)

    async def arecommend(
        self,
        history: UserHistory,
        k: int = 10,
        *,
        where: dict[str, Any] | None = None,
        candidates: Sequence[Candidate] | None = None,
        limits: Limits = no_limits,
    ) -> Recommendation:
        """The same as `recommend`, off the event loop (Chroma and the client are blocking)."""
        return await asyncio.to_thread(
            self.recommend, history, k, where=where, candidates=candidates, limits=limits
        )
