"""Baselines that use the order of a user's ratings, and the catalog-wide view of every
baseline: what it would retrieve on its own.

- `NextCountScorer`: the plain "what came next" count: for each of the user's last 10
  items, how often each item came within the next 10 ratings after it in the training
  sequences (raw counts, no decay, no normalisation).
- `RecencyKNNScorer`: item-kNN cosine summed over the user's last 50 items, the k-th most
  recent weighted 0.7^k (the product's `recency_knn` source, as a ranker).
- `SequentialScorer`: SASRec or GRU4Rec from RecBole (eval.sequential_models).

Every scorer here (and popularity, item-kNN and BPR in eval.baselines) can score every item
it knows (`all_scores`): `catalog_top` then gives its own top n over the whole catalog,
every item of the user's before the cut excluded, for the pipeline protocol's retrieval rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from eval.datasets import Rating
from eval.protocols import Case
from eval.sequential_models import Model, SequentialModel, SequentialSettings, TrainingLog
from retrieval.collaborative import ItemSimilarity, sequences
from retrieval.sequential import transition_matrix


class CatalogScorer(Protocol):
    name: str

    def score(self, case: Case) -> dict[str, float]: ...

    def all_scores(self, case: Case) -> Mapping[str, float]: ...


def on_candidates(scores: Mapping[str, float], case: Case) -> dict[str, float]:
    """The candidates' scores; one the scorer does not know ranks below every known one."""
    known = [scores[c] for c in case.candidates if c in scores]
    low = min(known, default=0.0) - 1.0
    return {c: float(scores[c]) if c in scores else low for c in case.candidates}


def catalog_top(scorer: CatalogScorer, case: Case, n: int) -> tuple[str, ...]:
    """The scorer's own top n of every item it knows, the user's items before the cut (and
    the case's history) excluded; ties in item-id order."""
    seen = {r.item for r in (*case.prior, *case.history)}
    scores = scorer.all_scores(case)
    ranked = sorted((i for i in scores if i not in seen), key=lambda i: (-scores[i], i))
    return tuple(ranked[:n])


def own_retrieval(scorer: CatalogScorer, case: Case, n: int) -> Case:
    """The case with the scorer's own top n as its candidates."""
    return replace(case, candidates=catalog_top(scorer, case, n), retrieval_scores=(),
                   found=())


def _rows(train: Sequence[Rating]) -> list[tuple[str, str, float | None, int | None]]:
    """Training ratings in the protocol's order, timestamps replaced by their position (so
    the seeded order of ratings made in one second is kept)."""
    return [(r.user, r.item, r.rating, n) for n, r in enumerate(train)]


class NextCountScorer:
    """How often each item came within `window` ratings after one of the user's last
    `last` items, in the training sequences."""

    name = "nextcount"

    def __init__(self, train: Sequence[Rating], *, window: int = 10, last: int = 10) -> None:
        self.similarity_index = {i: n for n, i in enumerate(dict.fromkeys(r.item for r in train))}
        self.ids = list(self.similarity_index)
        self.matrix = transition_matrix(sequences(_rows(train)), self.similarity_index,
                                        window=window, step_decay=1.0)
        self.last = last

    def all_scores(self, case: Case) -> dict[str, float]:
        recent = [r.item for r in case.history if r.item in self.similarity_index][-self.last:]
        if not recent:
            return dict.fromkeys(self.ids, 0.0)
        rows = [self.similarity_index[i] for i in recent]
        totals = np.asarray(self.matrix[rows].sum(axis=0), dtype=np.float64).ravel()
        return dict(zip(self.ids, totals.tolist(), strict=True))

    def score(self, case: Case) -> dict[str, float]:
        return on_candidates(self.all_scores(case), case)


class RecencyKNNScorer:
    """Item-kNN cosine over every training rating, summed over the user's last
    `max_history` items, the k-th most recent weighted decay^k."""

    name = "recency_knn"

    def __init__(self, train: Sequence[Rating], *, decay: float = 0.7,
                 max_history: int = 50) -> None:
        self.similarity = ItemSimilarity((r.user, r.item) for r in train)
        self.decay = decay
        self.max_history = max_history

    def all_scores(self, case: Case) -> dict[str, float]:
        sim = self.similarity
        recent = [r.item for r in reversed(case.history) if r.item in sim.index]
        recent = recent[:self.max_history]
        totals = sim.scores(recent, [self.decay ** age for age in range(len(recent))])
        return dict(zip(sim.ids, totals.tolist(), strict=True))

    def score(self, case: Case) -> dict[str, float]:
        return on_candidates(self.all_scores(case), case)


@dataclass(frozen=True)
class Trained:
    """A trained sequential model's log, as the report shows it."""

    log: TrainingLog
    settings: SequentialSettings
    cached: bool
    """Loaded from an earlier run's identical training (same rows, same settings)."""


class SequentialScorer:
    """SASRec or GRU4Rec trained on the given rows; scores the case's history (oldest
    first). The trained weights are kept under `cache` keyed by the rows and settings, so
    a resumed run (or another report on the same training rows) does not train again."""

    def __init__(self, model: Model, train: Sequence[Rating], settings: SequentialSettings,
                 cache: Path | None = None, progress: object = None) -> None:
        import torch

        self.name: str = model
        key = hashlib.sha256(json.dumps(
            [model, asdict(settings), [(r.user, r.item, r.rating, r.ts) for r in train]]
        ).encode()).hexdigest()[:16]
        weights = cache / f"{model}-{key}.pt" if cache else None
        log_path = cache / f"{model}-{key}.json" if cache else None
        report = progress if callable(progress) else (lambda _: None)
        if weights and log_path and weights.is_file() and log_path.is_file():
            self.model = SequentialModel(model, train, replace(settings, max_epochs=0))
            self.model.model.load_state_dict(torch.load(weights, weights_only=True))
            self.model.model.eval()
            log = TrainingLog(**json.loads(log_path.read_text(encoding="utf-8")))
            self.trained = Trained(log=log, settings=settings, cached=True)
            return
        self.model = SequentialModel(model, train, settings, progress=report)
        self.trained = Trained(log=self.model.log, settings=settings, cached=False)
        if weights and log_path:
            weights.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.model.model.state_dict(), weights)
            log_path.write_text(json.dumps(asdict(self.model.log)), encoding="utf-8")

    def all_scores(self, case: Case) -> dict[str, float]:
        return self.model.scores([r.item for r in case.history])

    def score(self, case: Case) -> dict[str, float]:
        return on_candidates(self.all_scores(case), case)
