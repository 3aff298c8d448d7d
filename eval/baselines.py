"""Non-LLM rankers that score exactly the candidates an LLM variant sees.

Each is fitted on the training interactions only (never a test target) and answers
`score(case) -> {item: score}` over `case.candidates`; an LLM variant that cannot beat
them is visible at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from eval.datasets import Rating
from eval.protocols import Case, to_history, user_rng
from retrieval.collaborative import ItemSimilarity
from retrieval.query import taste
from retrieval.store import CatalogStore


class Scorer(Protocol):
    name: str

    def score(self, case: Case) -> dict[str, float]: ...


class RandomScorer:
    """Uniform random order, seeded per user: the floor every ranker must clear."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def score(self, case: Case) -> dict[str, float]:
        rng = user_rng(self.seed, f"{case.user}/{case.setting}", "random")
        return {c: rng.random() for c in case.candidates}


class PopularityScorer:
    """How many training interactions each item has."""

    name = "popularity"

    def __init__(self, train: Sequence[Rating]) -> None:
        self.counts = Counter(r.item for r in train)

    def score(self, case: Case) -> dict[str, float]:
        return {c: float(self.counts.get(c, 0)) for c in case.candidates}

    def all_scores(self, case: Case) -> dict[str, float]:
        return {i: float(n) for i, n in self.counts.items()}


class _Interactions:
    """Training interactions as a binary user x item matrix with index maps."""

    def __init__(self, train: Sequence[Rating]) -> None:
        self.users = {u: n for n, u in enumerate(dict.fromkeys(r.user for r in train))}
        self.items = {i: n for n, i in enumerate(dict.fromkeys(r.item for r in train))}
        pairs = {(self.users[r.user], self.items[r.item]) for r in train}
        rows, cols = zip(*sorted(pairs), strict=True) if pairs else ((), ())
        self.matrix = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(self.users), len(self.items)),
        )


class ItemKNNScorer:
    """Sum over history items of the cosine of co-occurrence (users who had both): the
    same similarity as the co-occurrence retriever."""

    name = "itemknn"

    def __init__(self, train: Sequence[Rating]) -> None:
        self.similarity = ItemSimilarity((r.user, r.item) for r in train)

    def score(self, case: Case) -> dict[str, float]:
        sim = self.similarity
        totals = sim.scores([r.item for r in case.history])
        return {c: float(totals[sim.index[c]]) if c in sim.index else 0.0
                for c in case.candidates}

    def all_scores(self, case: Case) -> dict[str, float]:
        totals = self.similarity.scores([r.item for r in case.history])
        return dict(zip(self.similarity.ids, totals.tolist(), strict=True))


class EmbeddingScorer:
    """Dot product with the retriever's taste (retrieval.query.taste: mean liked - ½ mean
    disliked vector, not normalised): the order our semantic retrieval would give these
    candidates."""

    name = "embedding"

    def __init__(self, store: CatalogStore, *, dislike_weight: float = 0.5) -> None:
        self.store = store
        self.dislike_weight = dislike_weight

    def score(self, case: Case) -> dict[str, float]:
        if case.retrieval_scores and case.retriever == "semantic":
            return dict(zip(case.candidates, case.retrieval_scores, strict=True))
        history = to_history(case.user, case.history).interactions
        vectors = self.store.vectors([i.item_id for i in history] + list(case.candidates))
        liked = [vectors[i.item_id] for i in history if i.polarity > 0 and i.item_id in vectors]
        disliked = [vectors[i.item_id] for i in history
                    if i.polarity < 0 and i.item_id in vectors]
        if not liked and not disliked:
            liked = [vectors[i.item_id] for i in history if i.item_id in vectors]
        query = taste(liked, disliked, dislike_weight=self.dislike_weight)
        return {c: float(vectors[c] @ query) if c in vectors else -1.0 for c in case.candidates}


class BPRScorer:
    """Bayesian personalised ranking from `implicit`, trained on the training interactions.

    A case with its history cut short (cold start) must not use the user's learned vector,
    which saw the whole history: there the user is folded in as the mean factor of the
    visible history items (plus item biases)."""

    name = "bpr"

    def __init__(
        self, train: Sequence[Rating], *, factors: int = 64, iterations: int = 100,
        learning_rate: float = 0.05, regularization: float = 0.01, seed: int = 0,
    ) -> None:
        from implicit.bpr import BayesianPersonalizedRanking

        data = _Interactions(train)
        self.users, self.items = data.users, data.items
        # One thread: implicit's multi-threaded SGD is not reproducible run to run.
        model = BayesianPersonalizedRanking(
            factors=factors, iterations=iterations, learning_rate=learning_rate,
            regularization=regularization, num_threads=1, random_state=seed,
        )
        model.fit(data.matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors)
        self.item_factors = np.asarray(model.item_factors)
        """Last column: 1 for users, the item bias for items."""

    def score(self, case: Case) -> dict[str, float]:
        known = [c for c in case.candidates if c in self.items]
        floor = {c: float("-inf") for c in case.candidates}
        user = self._user_vector(case)
        if user is None or not known:
            return {c: 0.0 for c in case.candidates}
        rows = self.item_factors[[self.items[c] for c in known]]
        floor.update(zip(known, (float(s) for s in rows @ user), strict=True))
        low = min((v for v in floor.values() if v != float("-inf")), default=0.0) - 1.0
        return {c: v if v != float("-inf") else low for c, v in floor.items()}

    def all_scores(self, case: Case) -> dict[str, float]:
        user = self._user_vector(case)
        if user is None:
            return dict.fromkeys(self.items, 0.0)
        return dict(zip(self.items, (self.item_factors @ user).tolist(), strict=True))

    def _user_vector(self, case: Case) -> np.ndarray | None:
        if not case.truncated and case.user in self.users:
            return np.asarray(self.user_factors[self.users[case.user]])
        rows = [self.items[r.item] for r in case.history if r.item in self.items]
        if not rows:
            return None
        vector = self.item_factors[rows].mean(axis=0)
        vector[-1] = 1.0  # keep the item-bias term
        return np.asarray(vector)
