"""Collaborative item vectors from implicit ALS, kept in their own Chroma collection.

`implicit`'s alternating least squares factorises the binary user x item matrix of the
training interactions. The item factors go into a collection of their own beside the
catalog (`<catalog>-als-<digest>`, inner-product space, vectors passed explicitly:
Chroma never embeds anything), so a later process reads them instead of training again;
"items near this user's taste" is then one product with the factors in memory. A user, new
or not, is folded in from a sparse history without retraining, by the closed form of one ALS
user step (Hu, Koren and Volinsky, 2008) with the item factors fixed:

    x_u = (YᵀY + λI + Σ_h (c_h - 1) y_h y_hᵀ)⁻¹ Σ_h c_h y_h,
    c_h = alpha · (1 + recent_boost · recency^age_h)

(`implicit`'s `recalculate_user` computes the same with c_h given; age 0 is the most
recent item, so recent items weigh more). A candidate's score is x_u · y_j, and its
`nearest_history_id` is the history item with the largest share c_h · y_jᵀ A⁻¹ y_h of that
score. Defaults: chosen on validation cases of ML-100K and ML-1M (see
eval/configs/retrieval_*.toml).

The collection is named by a digest of the training data and the settings, so the same
training reads its stored vectors back and trains nothing, and processes training on
different data (a fit's held-out split, eval, the product) never touch each other's
collection; two writing the same one write the same vectors. The oldest of more than
`KEEP` such collections of a catalog are dropped when a new one is written. A collection
named explicitly is rebuilt in place when the training changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import chromadb
import numpy as np
import scipy.sparse as sp
from chromadb.api import ClientAPI

from retrieval.collaborative import (
    Interactions,
    _check,
    as_rows,
    ranked_candidates,
    recent_first,
)
from retrieval.errors import ConfigError
from retrieval.store import READ_CHUNK, SEARCH_EF, CatalogStore
from retrieval.types import Candidate, UserHistory

DIGEST_KEY = "als_digest"
"""Collection metadata: what the stored vectors were trained from (data and settings)."""
CREATED_KEY = "als_created"
KEEP = 8
"""Digest-named ALS collections kept per catalog (the most recently written)."""


@contextmanager
def _quiet() -> Iterator[None]:
    """No embedding function on purpose (as in retrieval/store.py); and implicit's advice
    about BLAS threads is taken (one thread), so its warning says nothing new."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "legacy embedding function", DeprecationWarning)
        warnings.filterwarnings("ignore", ".*BLAS is configured", RuntimeWarning)
        yield


def train_als(
    users: Sequence[str], items: Sequence[str], pairs: Sequence[tuple[str, str]], *,
    factors: int, regularization: float, iterations: int, alpha: float, seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """ALS user and item factors (one row per user or item, in the order given) of the
    binary user x item matrix of `pairs`."""
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    user_index = {u: n for n, u in enumerate(users)}
    item_index = {i: n for n, i in enumerate(items)}
    unique = sorted({(user_index[u], item_index[i]) for u, i in pairs})
    rows, cols = zip(*unique, strict=True) if unique else ((), ())
    matrix = sp.csr_matrix((np.ones(len(unique), dtype=np.float32), (rows, cols)),
                           shape=(len(users), len(items)))
    # One thread: reproducible, and what implicit asks of BLAS.
    with _quiet(), threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                        iterations=iterations, alpha=alpha, random_state=seed,
                                        num_threads=1)
        model.fit(matrix, show_progress=False)
    return (np.asarray(model.user_factors, dtype=np.float32),
            np.asarray(model.item_factors, dtype=np.float32))


class ALSRetriever:
    """Items whose ALS vector has the largest dot product with the folded-in user, seen
    ones excluded: exact, scored in memory (the collection keeps the factors for the next
    process, which reads them instead of training again)."""

    source = "als"

    def __init__(
        self, store: CatalogStore, interactions: Interactions, *, factors: int = 32,
        regularization: float = 0.1, iterations: int = 15, alpha: float = 1.0,
        recency: float = 0.9, recent_boost: float = 9.0, seed: int = 0,
        collection: str | None = None, client: ClientAPI | None = None,
    ) -> None:
        """`collection` defaults to `<catalog>-als-<digest>`, on `client` (default: the
        catalog's own Chroma client, so the same folder or server)."""
        if min(factors, iterations) < 1 or regularization < 0 or alpha <= 0:
            raise ConfigError("ALS needs factors, iterations >= 1, regularization >= 0 and "
                              "alpha > 0")
        if not 0 < recency <= 1 or recent_boost < 0:
            raise ConfigError(f"recency must be in (0, 1] and recent_boost >= 0, got {recency} "
                              f"and {recent_boost}")
        rows = as_rows(interactions)
        if not rows:
            raise ConfigError("the ALS source needs training interactions; none were given")
        pairs = [(u, i) for u, i, _, _ in rows]
        users = list(dict.fromkeys(u for u, _ in pairs))
        self.items = list(dict.fromkeys(i for _, i in pairs))
        """Item ids in column order (first appearance)."""
        self.index = {i: n for n, i in enumerate(self.items)}
        self.store = store
        self.regularization = regularization
        self.alpha, self.recency, self.recent_boost = alpha, recency, recent_boost
        settings: dict[str, Any] = dict(factors=factors, regularization=regularization,
                                        iterations=iterations, alpha=alpha, seed=seed)
        digest = _digest(settings, sorted(set(pairs)))
        client = client or _catalog_client(store)
        prefix = f"{store.collection.name}-als-"
        self.collection = self._open(client, collection or prefix + digest[:16], digest,
                                     rebuild=collection is not None)
        stored = self._read()
        if stored is None:
            _, stored = train_als(users, self.items, pairs, **settings)
            self._write(stored, digest)
            if collection is None:
                _prune(client, prefix, keep=self.collection.name)
        self.item_factors = stored.astype(np.float64)
        self.gram = self.item_factors.T @ self.item_factors
        self.id_order = np.argsort(np.argsort(np.asarray(self.items, dtype=object)))
        """Each column's place in id order: equal scores are ordered by id."""

    # ---- the collection ----------------------------------------------------------------

    def _open(self, client: ClientAPI, name: str, digest: str, *, rebuild: bool
              ) -> chromadb.Collection:
        """The collection; with `rebuild`, emptied (recreated) when it holds vectors of
        other training (a digest-named one only ever holds its own)."""
        config: Any = {"hnsw": {"space": "ip", "ef_search": SEARCH_EF}}
        with _quiet():
            found = client.get_or_create_collection(name, embedding_function=None,
                                                    configuration=config)
            if rebuild and ((found.metadata or {}).get(DIGEST_KEY) != digest
                            or found.count() != len(self.items)):
                client.delete_collection(name)
                found = client.create_collection(name, embedding_function=None,
                                                 configuration=config)
        return found

    def _read(self) -> np.ndarray | None:
        """The stored item factors in column order, if the collection holds them all."""
        if not self.collection.metadata or DIGEST_KEY not in self.collection.metadata:
            return None
        got: dict[str, np.ndarray] = {}
        for start in range(0, len(self.items), READ_CHUNK):
            chunk = self.items[start:start + READ_CHUNK]
            res = self.collection.get(ids=chunk, include=["embeddings"])
            embs = res["embeddings"] if res["embeddings"] is not None else []
            got.update(zip(res["ids"], (np.asarray(e, dtype=np.float32) for e in embs),
                           strict=True))
        if len(got) != len(self.items):
            return None
        return np.stack([got[i] for i in self.items])

    def _write(self, item_factors: np.ndarray, digest: str) -> None:
        for start in range(0, len(self.items), READ_CHUNK):
            self.collection.upsert(ids=self.items[start:start + READ_CHUNK],
                                   embeddings=item_factors[start:start + READ_CHUNK])
        with _quiet():  # last: only a complete collection is marked as holding this training
            self.collection.modify(metadata={DIGEST_KEY: digest, CREATED_KEY: time.time()})

    # ---- folding in and querying -------------------------------------------------------

    def confidences(self, n_known: int) -> np.ndarray:
        """c_h for the known history items, most recent first."""
        ages = np.arange(n_known, dtype=np.float64)
        return self.alpha * (1.0 + self.recent_boost * self.recency ** ages)

    def fold_in(self, recent: Sequence[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """The user vector for a history given most recent first (unknown items skipped),
        the known items, and A⁻¹ c_h y_h per known item (columns): each one's share."""
        known = [i for i in dict.fromkeys(recent) if i in self.index]
        f = self.item_factors.shape[1]
        if not known:
            return np.zeros(f), known, np.zeros((f, 0))
        y = self.item_factors[[self.index[i] for i in known]]
        c = self.confidences(len(known))
        a = self.gram + self.regularization * np.eye(f) + (y.T * (c - 1.0)) @ y
        shares = np.linalg.solve(a, (y * c[:, None]).T)
        return shares.sum(axis=1), known, shares

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        _check(history, n)
        vector, known, shares = self.fold_in(recent_first(history, len(history.interactions)))
        if not known:
            return []
        scores = self.item_factors @ vector
        gone = [self.index[i] for i in history.seen_ids if i in self.index]
        scores[gone] = -np.inf
        def nearest(ids: list[str]) -> list[str | None]:  # the largest share of the score
            contribution = self.item_factors[[self.index[i] for i in ids]] @ shares
            return [known[int(b)] for b in np.argmax(contribution, axis=1)]

        return ranked_candidates(self.store, scores, self.items, n, self.source, where,
                                 positive=False, tiebreak=self.id_order, nearest=nearest)


def _catalog_client(store: CatalogStore) -> ClientAPI:
    """The Chroma client the catalog store was opened with (CatalogStore.open keeps it)."""
    client: ClientAPI | None = store.guard._client
    if client is None:
        raise ConfigError("the ALS source needs a catalog store opened with CatalogStore.open "
                          "(or a Chroma client given explicitly)")
    return client


def _prune(client: ClientAPI, prefix: str, *, keep: str) -> None:
    """Drop the oldest digest-named collections beyond KEEP (never `keep`, just written,
    nor one named explicitly)."""
    found = [c for c in client.list_collections() if c.name.startswith(prefix)
             and c.name[len(prefix):] == str((c.metadata or {}).get(DIGEST_KEY, ""))[:16]]
    found.sort(key=lambda c: float((c.metadata or {}).get(CREATED_KEY, 0.0)), reverse=True)
    for old in found[KEEP:]:
        if old.name != keep:
            with contextlib.suppress(Exception):  # another process may have dropped it
                client.delete_collection(old.name)


def _digest(settings: dict[str, Any], pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256(repr(sorted(settings.items())).encode())
    for user, item in pairs:
        h.update(f"{user}\t{item}\n".encode())
    return h.hexdigest()[:32]
