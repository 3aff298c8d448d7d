"""The catalog's read side: items by id, their vectors, and nearest neighbours.

Answered from the collection's in-memory image (retrieval/memory_index.py) when the
store keeps one: a request then costs no Chroma round trip for records it already holds,
and a nearest-neighbour query is an exact dot product instead of an HNSW walk. Chroma
stays the store of record: the image reloads when the collection's version stamp changes
(every ingest writes one), and a `where` filter is still Chroma's, evaluated once per
filter and version. A store opened with `memory=False` reads Chroma on every call.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection as AbstractCollection
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import chromadb
import numpy as np

from retrieval.catalog_rows import READ_CHUNK, item_from_row
from retrieval.catalog_rows import chunks as _chunks
from retrieval.embeddings import Embedder
from retrieval.errors import ConfigError
from retrieval.ingest_guard import IngestGuard
from retrieval.memory_index import MemoryIndex
from retrieval.types import Item

SEARCH_EF = 1000
"""HNSW candidate-list size of a query. At Chroma's default (100) a deep query misses true
neighbours, and which ones differs between processes (the index is rebuilt from Chroma's
log in parallel): two runs of one evaluation retrieved different candidates for 8% of the
users. At 1000, 100-deep queries of ML-100K (1682 items) were exact and the same in every
process and fresh build we tried but one (a CI run missed 1 of 3100 neighbours; at 100
the same 31 queries miss 11); of 65 on ML-1M (3883 items) one still missed one item.
A store with an in-memory image answers queries exactly and does not walk HNSW at all."""

Hit = tuple[Item, float, np.ndarray]
"""(Item, cosine similarity, stored vector): one nearest-neighbour answer."""


@contextmanager
def no_legacy_warning() -> Iterator[None]:
    """We pass no embedding function on purpose; Chroma calls that "legacy" when it reads
    a collection's configuration."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "legacy embedding function", DeprecationWarning)
        yield


def hnsw_configuration(collection: chromadb.Collection) -> dict[str, Any]:
    with no_legacy_warning():
        configuration = collection.configuration or {}
    return dict(configuration.get("hnsw") or {})


class CatalogReader:
    """Reads of one catalog collection (cosine space); `CatalogStore` adds the writes."""

    collection: chromadb.Collection
    embedder: Embedder
    guard: IngestGuard
    memory: MemoryIndex | None
    """The in-memory image that answers reads; None: every read goes to Chroma."""

    def count(self) -> int:
        if self.memory is not None:
            return len(self.memory.current().ids)
        return self.collection.count()

    @property
    def search_ef(self) -> int:
        """The HNSW search depth the collection queries with (see SEARCH_EF)."""
        return int(hnsw_configuration(self.collection)["ef_search"])

    def check_complete(self) -> None:
        """Raise IncompleteCatalogError if the collection's last ingest did not finish (it
        was killed, or is still writing); call once after opening a store for reading.
        A collection made before completion markers existed counts as complete."""
        self.guard.check()

    def get(
        self, ids: Sequence[str], *, where: dict[str, Any] | None = None
    ) -> dict[str, Item]:
        """The Items with these ids, in the given order; unknown ids, and items that fail
        the `where` metadata filter, are simply absent."""
        wanted = list(dict.fromkeys(ids))
        if self.memory is not None:
            image = self.memory.current()
            allowed = self.memory.allowed(image, where)
            return {i: image.item(i) for i in wanted
                    if i in image.row and (allowed is None or i in allowed.ids)}
        found: dict[str, Item] = {}
        for chunk in _chunks(wanted, READ_CHUNK):
            got = self.collection.get(ids=list(chunk), where=where or None,
                                      include=["documents", "metadatas"])
            for id_, doc, md in zip(got["ids"], got["documents"] or [], got["metadatas"] or [],
                                    strict=True):
                found[id_] = item_from_row(id_, doc, md)
        return {i: found[i] for i in wanted if i in found}

    def vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors (float32, unit length) by id; unknown ids are simply absent."""
        wanted = list(dict.fromkeys(ids))
        if self.memory is not None:
            image = self.memory.current()
            if not image.broken.intersection(wanted):
                return {i: image.vectors[image.row[i]] for i in wanted if i in image.row}
        found: dict[str, np.ndarray] = {}  # Chroma says what is wrong with a broken one
        for chunk in _chunks(wanted, READ_CHUNK):
            got = self.collection.get(ids=list(chunk), include=["embeddings"])
            embs = got["embeddings"] if got["embeddings"] is not None else []
            for id_, emb in zip(got["ids"], embs, strict=True):
                found[id_] = np.asarray(emb, dtype=np.float32)
        return {i: found[i] for i in wanted if i in found}

    def query(
        self,
        vector: np.ndarray,
        n: int,
        *,
        exclude: AbstractCollection[str] = (),
        where: dict[str, Any] | None = None,
    ) -> list[Hit]:
        """Nearest items as (item, cosine similarity, vector), best first, none excluded.

        Equal scores (duplicate items share a text, so a vector) are ordered by id, and a
        tie across the cut is settled by id. From memory the search is exact; from Chroma
        (whose query cannot exclude ids: its `ids` argument is an allow-list) we over-fetch
        by the number of excluded ids and widen the search until n survive or the matching
        items run out, and until the n-th score is not tied with the next one.
        """
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        query = np.asarray(vector, dtype=np.float32)
        if query.ndim != 1 or not np.isfinite(query).all():
            raise ConfigError(f"query vector must be one finite row, got shape {query.shape}")
        if self.memory is not None:
            image = self.memory.current()
            allowed = self.memory.allowed(image, where)
            return [(image.item(i), score, image.vectors[image.row[i]])
                    for i, score in image.nearest(query, n, set(exclude), allowed)]
        return self._chroma_query(query, n, set(exclude), where)

    def _chroma_query(self, query: np.ndarray, n: int, excluded: set[str],
                      where: dict[str, Any] | None) -> list[Hit]:
        total = self.collection.count()
        k = min(total, n + len(excluded) + 1)
        hits: list[Hit] = []
        while k > 0:
            got = self.collection.query(
                query_embeddings=[query.tolist()],
                n_results=k,
                where=where or None,
                include=["documents", "metadatas", "distances", "embeddings"],
            )
            ids = got["ids"][0]
            docs = (got["documents"] or [[]])[0]
            mds = (got["metadatas"] or [[]])[0]
            dists = (got["distances"] or [[]])[0]
            embs = got["embeddings"][0] if got["embeddings"] is not None else []
            hits = [
                (item_from_row(i, doc, md), 1.0 - float(dist), np.asarray(emb, dtype=np.float32))
                for i, doc, md, dist, emb in zip(ids, docs, mds, dists, embs, strict=True)
                if i not in excluded
            ]
            hits.sort(key=lambda hit: (-hit[1], hit[0].id))
            settled = len(hits) > n and hits[n][1] < hits[n - 1][1]
            if settled or len(ids) < k or k >= total:
                break
            k = min(total, 2 * k)
        return hits[:n]
