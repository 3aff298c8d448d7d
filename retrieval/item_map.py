"""An AlphaRec-style item map: text vectors → collaborative (ALS) item vectors, linearly.

AlphaRec (Sheng et al., ICLR 2025) shows that a language model's frozen item
representations, mapped into the collaborative space, recommend well, and best where
collaborative filtering has nothing: items nobody has interacted with yet. Here the map is
a ridge regression fitted on the warm items only (those with an ALS vector, retrieval/als.py),

    Y ≈ (X - x̄) W + ȳ,   W = ((X - x̄)ᵀ(X - x̄) + λI)⁻¹ (X - x̄)ᵀ(Y - ȳ),

with λ chosen by k-fold cross-validation on the warm items, then applied to every item of
the text collection, so a cold item gets a collaborative-like vector from its text alone.

`MappedRetriever` folds a user in exactly as ALS does (the closed form of one user step,
`ALSRetriever.fold_in`), except that history items without an ALS vector stand in with
their mapped one, and scores every item by its *mapped* vector: the source says what the
text predicts in collaborative space ("text_mapped" from MiniLM, "llm_mapped" from an LLM's
vectors); the "als" source itself covers the warm items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.als import ALSRetriever
from retrieval.collaborative import (
    _check,
    ranked_candidates,
    recent_first,
)
from retrieval.errors import ConfigError
from retrieval.item_types import MapFit
from retrieval.item_vectors import all_vectors
from retrieval.store import CatalogStore
from retrieval.types import Candidate, UserHistory

RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
CV_FOLDS = 5


@dataclass(frozen=True)
class LinearMap:
    """y = (x - x_mean) @ weights + y_mean."""

    weights: np.ndarray
    x_mean: np.ndarray
    y_mean: np.ndarray
    ridge: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (np.asarray(x, dtype=np.float64) - self.x_mean) @ self.weights
        out += self.y_mean
        return out


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> LinearMap:
    """The ridge solution with an unpenalised intercept (both sides centred)."""
    if ridge <= 0:
        raise ConfigError(f"the ridge penalty must be > 0, got {ridge}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ConfigError(f"need matching rows of x and y (at least 2), got {x.shape} and "
                          f"{y.shape}")
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * np.eye(x.shape[1])
    return LinearMap(np.linalg.solve(gram, xc.T @ yc), x_mean, y_mean, ridge)


def r2(predicted: np.ndarray, actual: np.ndarray) -> float:
    """1 - residual / total sum of squares, over every coordinate (0: the mean vector)."""
    total = float(((actual - actual.mean(axis=0)) ** 2).sum())
    residual = float(((actual - predicted) ** 2).sum())
    return 1.0 - residual / total if total > 0 else 0.0


def cross_validated(
    x: np.ndarray, y: np.ndarray, grid: Sequence[float] = RIDGE_GRID, *,
    folds: int = CV_FOLDS, seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """The penalty with the best k-fold R² (ties: the larger, the safer), and every
    penalty's R² (predictions of all folds pooled)."""
    n = x.shape[0]
    if n < folds or folds < 2:
        raise ConfigError(f"{n} warm items cannot be split into {folds} folds (need >= 2 "
                          "folds and at least as many items)")
    order = list(range(n))
    random.Random(f"{seed}/item-map").shuffle(order)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % folds
    scores: dict[float, float] = {}
    for ridge in grid:
        predicted = np.empty_like(y, dtype=np.float64)
        for f in range(folds):
            held = fold_of == f
            predicted[held] = fit_ridge(x[~held], y[~held], ridge).apply(x[held])
        scores[ridge] = r2(predicted, y)
    best = max(sorted(grid, reverse=True), key=lambda g: scores[g])
    return best, scores


def fit_item_map(
    x: np.ndarray, y: np.ndarray, *, source: str, grid: Sequence[float] = RIDGE_GRID,
    seed: int = 0,
) -> tuple[LinearMap, MapFit]:
    """The map at the cross-validated penalty, refitted on every warm item, and its record."""
    ridge, scores = cross_validated(x, y, grid, seed=seed)
    fit = MapFit(source=source, warm_items=x.shape[0], text_dim=x.shape[1],
                 target_dim=y.shape[1], ridge=ridge, cv_r2=scores[ridge],
                 cv_r2_by_ridge={f"{g:g}": s for g, s in scores.items()})
    return fit_ridge(x, y, ridge), fit


class MappedRetriever:
    """Items by the dot product of the folded-in user with their mapped ALS vectors."""

    def __init__(
        self, text: CatalogStore, als: ALSRetriever, *, source: str = "text_mapped",
        grid: Sequence[float] = RIDGE_GRID, seed: int = 0,
    ) -> None:
        """`text`: the collection whose vectors are mapped (the catalog's MiniLM vectors,
        or an LLM's from retrieval.item_vectors); `als`: the collaborative space, trained
        on warm interactions only."""
        self.store = text
        self.als = als
        self.source = source
        ids, vectors = all_vectors(text)
        warm = [n for n, i in enumerate(ids) if i in als.index]
        if len(warm) < CV_FOLDS:
            raise ConfigError(f"only {len(warm)} items of {text.collection.name!r} have an ALS "
                              f"vector; the map needs at least {CV_FOLDS}")
        targets = als.item_factors[[als.index[ids[n]] for n in warm]]
        self.map, self.fit = fit_item_map(vectors[warm], targets, source=text.embedder.name,
                                          grid=grid, seed=seed)
        self.ids = ids
        self.index = {i: n for n, i in enumerate(ids)}
        self.mapped = self.map.apply(vectors)
        """Every item's mapped vector, rows in `ids` order."""

    def _vector(self, item: str) -> np.ndarray:
        """An item's collaborative vector where ALS has one, else its mapped one."""
        if item in self.als.index:
            return np.asarray(self.als.item_factors[self.als.index[item]])
        return np.asarray(self.mapped[self.index[item]])

    def fold_in(self, history: UserHistory) -> tuple[np.ndarray, list[str], np.ndarray]:
        """As ALSRetriever.fold_in, with mapped vectors for history items ALS never saw:
        (user vector, the history items used, each one's share of the user as columns)."""
        recent = recent_first(history, len(history.interactions))
        known = [i for i in dict.fromkeys(recent) if i in self.als.index or i in self.index]
        f = self.als.item_factors.shape[1]
        if not known:
            return np.zeros(f), known, np.zeros((f, 0))
        y = np.stack([self._vector(i) for i in known])
        c = self.als.confidences(len(known))
        a = self.als.gram + self.als.regularization * np.eye(f) + (y.T * (c - 1.0)) @ y
        shares = np.linalg.solve(a, (y * c[:, None]).T)
        return shares.sum(axis=1), known, shares

    def score(self, history: UserHistory, ids: Sequence[str]) -> dict[str, float]:
        """The user's score of each of `ids` the collection holds (others are absent)."""
        user, _, _ = self.fold_in(history)
        known = [i for i in ids if i in self.index]
        if not known:
            return {}
        values = self.mapped[[self.index[i] for i in known]] @ user
        return {i: float(v) for i, v in zip(known, values, strict=True)}

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        user, known, shares = self.fold_in(history)
        if not known:
            return []
        scores = self.mapped @ user
        gone = [self.index[i] for i in history.seen_ids if i in self.index]
        scores[gone] = -np.inf
        def nearest(ids: list[str]) -> list[str | None]:  # the largest share of the score
            contribution = self.mapped[[self.index[i] for i in ids]] @ shares
            return [known[int(b)] for b in np.argmax(contribution, axis=1)]

        return ranked_candidates(self.store, scores, self.ids, n, self.source, where,
                                 positive=False, nearest=nearest)
