"""The rankers of the item cold start protocol: attribute popularity, text and LLM vectors,
their maps into the collaborative space, and fusions, each a `Scorer` over a case's
candidates (eval.baselines' interface), so the harness runs them as rows.

Each learns only from the warm training interactions. The vector rankers are the product's
own sources (retrieval/item_vectors.py, retrieval/item_map.py) asked for the candidates'
scores, so the report measures what the product would fuse.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from eval.baselines import EmbeddingScorer, Scorer
from eval.datasets import Rating
from eval.item_coldstart_config import (
    ALL_FUSION,
    LLM_CENTRED,
    LLM_FUSION,
    LLM_MAPPED,
    LLM_TEXT,
    MINILM_CENTRED,
    MINILM_FUSION,
    MINILM_MAPPED,
    MINILM_TEXT,
    NO_LLM_FUSION,
    POP_ATTRIBUTES,
    llm_row,
)
from eval.protocols import Case, to_history
from recagent.rank.ensemble import fuse
from recagent.types import Item
from retrieval.als import ALSRetriever
from retrieval.embeddings import l2_normalise
from retrieval.item_map import RIDGE_GRID, MappedRetriever, fit_item_map
from retrieval.item_types import MapFit
from retrieval.item_vectors import all_vectors
from retrieval.query import taste
from retrieval.store import CatalogStore


def attributes(item: Item) -> list[str]:
    """An item's genres and release year, from the catalog's metadata (MovieLens: the
    '|'-joined `genres` and `year`); an item without either has no attributes."""
    genres = str(item.metadata.get("genres", "")).split("|")
    year = item.metadata.get("year")
    return [f"genre:{g}" for g in genres if g] + ([f"year:{year}"] if year is not None else [])


class AttributePopularityScorer:
    """Popularity predicted from an item's attributes: a ridge regression of log(1 + the
    item's warm positive interactions) on its genre and release-year indicators, fitted on
    the warm items. It is popularity's best guess for an item nobody has rated."""

    name = POP_ATTRIBUTES

    def __init__(self, train: Sequence[Rating], items: Mapping[str, Item], *,
                 grid: Sequence[float] = RIDGE_GRID, seed: int = 0) -> None:
        counts = Counter(r.item for r in train)
        names = sorted({a for i in items.values() for a in attributes(i)})
        column = {a: n for n, a in enumerate(names)}
        ids = sorted(items)
        x = np.zeros((len(ids), max(len(names), 1)))
        for row, item_id in enumerate(ids):
            for a in attributes(items[item_id]):
                x[row, column[a]] = 1.0
        warm = [n for n, i in enumerate(ids) if counts.get(i, 0) > 0]
        y = np.log1p([[counts[ids[n]]] for n in warm])
        linear, self.fit = fit_item_map(x[warm], y, source="attributes", grid=grid, seed=seed)
        predicted = linear.apply(x)[:, 0]
        self.predicted = {i: float(v) for i, v in zip(ids, predicted, strict=True)}

    def score(self, case: Case) -> dict[str, float]:
        return {c: self.predicted.get(c, 0.0) for c in case.candidates}


class NamedScorer:
    """Another scorer's scores under another row name."""

    def __init__(self, inner: Scorer, name: str) -> None:
        self.inner = inner
        self.name = name

    def score(self, case: Case) -> dict[str, float]:
        return self.inner.score(case)


class MappedScorer:
    """A mapped source's score of each candidate (retrieval.item_map.MappedRetriever)."""

    def __init__(self, retriever: MappedRetriever, name: str) -> None:
        self.retriever = retriever
        self.name = name

    def score(self, case: Case) -> dict[str, float]:
        got = self.retriever.score(to_history(case.user, case.history), case.candidates)
        return {c: got.get(c, -math.inf) for c in case.candidates}


class CentredScorer:
    """The text rule (retrieval.query.taste) on vectors with the catalog's mean vector
    removed, then re-normalised: the usual cure for anisotropic embeddings, whose shared
    direction otherwise decides the order. Exploratory (see EXPLORATORY)."""

    def __init__(self, store: CatalogStore, name: str) -> None:
        ids, matrix = all_vectors(store)
        self.index = {i: n for n, i in enumerate(ids)}
        self.vectors = l2_normalise(matrix - matrix.mean(axis=0))
        self.name = name

    def score(self, case: Case) -> dict[str, float]:
        history = [i for i in to_history(case.user, case.history).interactions
                   if i.item_id in self.index]
        liked = [self.vectors[self.index[i.item_id]] for i in history if i.polarity > 0]
        disliked = [self.vectors[self.index[i.item_id]] for i in history if i.polarity < 0]
        if not liked and not disliked:
            liked = [self.vectors[self.index[i.item_id]] for i in history]
        if not liked and not disliked:
            return dict.fromkeys(case.candidates, 0.0)
        query = taste(liked, disliked)
        return {c: float(self.vectors[self.index[c]] @ query) if c in self.index else -math.inf
                for c in case.candidates}


class FusedScorer:
    """Equal-weight sum of the parts' min-max normalised scores (recagent.rank.ensemble.fuse):
    no weight is fitted, so no validation users are needed."""

    def __init__(self, parts: Sequence[Scorer], name: str) -> None:
        self.parts = list(parts)
        self.name = name

    def score(self, case: Case) -> dict[str, float]:
        scores = {p.name: p.score(case) for p in self.parts}
        return fuse(scores, dict.fromkeys(scores, 1.0), case.candidates)


class ColdStartRankers:
    """Builds every ranker of the protocol from the prepared training split, and keeps the
    fitted maps for the report."""

    def __init__(self, store: CatalogStore, llm_vectors: Mapping[str, CatalogStore], *,
                 items: Mapping[str, Item], grid: Sequence[float] = RIDGE_GRID,
                 seed: int = 0, als_collection: str | None = None) -> None:
        """`als_collection`: the ALS item vectors' collection (default: the store's name
        + "-als-itemcold")."""
        self.store = store
        self.als_collection = als_collection or f"{store.collection.name}-als-itemcold"
        self.llm_vectors = dict(llm_vectors)
        self.items = items
        self.grid = tuple(grid)
        self.seed = seed
        self.maps: dict[str, MapFit] = {}
        """Row name → how its map was fitted (ridge, cross-validated R²)."""

    def __call__(self, train: Sequence[Rating], positives: Sequence[Rating]) -> list[Scorer]:
        """The rows: popularity by attributes (from the positive warm interactions, as the
        baselines learn), MiniLM and each model's vectors by similarity and mapped into an
        ALS space trained on every warm interaction (as the product's ALS source), fusions."""
        rows = [(r.user, r.item, r.rating, r.ts) for r in train]
        als = ALSRetriever(self.store, rows, seed=self.seed,
                           collection=self.als_collection)
        popularity = AttributePopularityScorer(positives, self.items, grid=self.grid,
                                               seed=self.seed)
        self.maps[POP_ATTRIBUTES] = popularity.fit
        minilm: list[Scorer] = [NamedScorer(EmbeddingScorer(self.store), MINILM_TEXT),
                  self._mapped(self.store, als, MINILM_MAPPED)]
        out: list[Scorer] = [popularity, *minilm, FusedScorer(minilm, MINILM_FUSION),
                             FusedScorer([popularity, *minilm], NO_LLM_FUSION),
                             CentredScorer(self.store, MINILM_CENTRED)]
        for model, vectors in self.llm_vectors.items():
            llm: list[Scorer] = [NamedScorer(EmbeddingScorer(vectors), llm_row(LLM_TEXT, model)),
                                 self._mapped(vectors, als, llm_row(LLM_MAPPED, model))]
            out += [*llm, FusedScorer(llm, llm_row(LLM_FUSION, model)),
                    FusedScorer([popularity, *minilm, *llm], llm_row(ALL_FUSION, model)),
                    CentredScorer(vectors, llm_row(LLM_CENTRED, model))]
        return out

    def _mapped(self, vectors: CatalogStore, als: ALSRetriever, name: str) -> MappedScorer:
        retriever = MappedRetriever(vectors, als, source=name, grid=self.grid, seed=self.seed)
        self.maps[name] = retriever.fit
        return MappedScorer(retriever, name)
