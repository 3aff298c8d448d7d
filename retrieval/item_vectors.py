"""Item vectors of another embedder (an LLM's pooled hidden states), one collection each.

The issue's item-side knowledge is computed once per item, not per user: one pass of the
embedder over the catalog, into a Chroma collection of its own beside the catalog
(`vector_collection`: `<catalog>-vec-<embedder>`, opened where the catalog lives by
recagent.wiring). That collection is an ordinary `CatalogStore` under another name, so
the store's own caching applies: an item's vector is keyed by the embedder's name and the
item's text, and a second pass over an unchanged catalog embeds nothing.
A `LazyEmbedder` starts the model only when a pass finds something to embed.

`ItemVectorRetriever` is the semantic rule (retrieval/query.py) over those vectors: the
"llm_text" source of the hybrid retriever, and the LLM-similarity ranker in eval.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence

import numpy as np

from retrieval.embeddings import Embedder
from retrieval.errors import ConfigError
from retrieval.ingest_guard import LOCK_TIMEOUT_S
from retrieval.item_types import CatalogPass
from retrieval.semantic import SemanticRetriever
from retrieval.store import READ_CHUNK, CatalogStore
from retrieval.types import Item

VECTOR_INFIX = "-vec-"
PASS_SECONDS_KEY = "item_pass_s"
PASS_ITEMS_KEY = "item_pass_items"
"""Collection metadata: time and size of the last pass that embedded every item."""


def vector_collection(catalog: str, embedder_name: str) -> str:
    """The collection name for `embedder_name`'s vectors of `catalog`: readable, a valid
    Chroma name, and distinct for distinct embedders (a digest of the full name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", embedder_name.lower()).strip("-")[:48] or "embedder"
    digest = hashlib.sha256(embedder_name.encode()).hexdigest()[:8]
    return f"{catalog}{VECTOR_INFIX}{slug}-{digest}"


class NamedEmbedder:
    """Another embedder's vectors under a name that says what made them: the cache key of
    every vector, so a different model or pooling never reuses them."""

    def __init__(self, inner: Embedder, name: str) -> None:
        self.inner = inner
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)


class LazyEmbedder:
    """An embedder built by `make()` on the first `embed` call: a pass that finds every
    vector cached never loads the model. Whoever owns what `make` starts stops it."""

    def __init__(self, name: str, make: Callable[[], Embedder]) -> None:
        self._name = name
        self._make = make
        self._inner: Embedder | None = None
        self.embedded = 0
        """Texts embedded so far."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def started(self) -> bool:
        return self._inner is not None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._inner is None:
            self._inner = self._make()
        self.embedded += len(texts)
        return self._inner.embed(texts)


def embed_catalog(
    store: CatalogStore, items: Sequence[Item], *, batch_size: int = 64, progress: bool = False
) -> CatalogPass:
    """One timed pass of the store's embedder over `items` (new or changed ones only). A
    pass that embeds every item records its time in the collection's metadata, so what
    the whole catalog cost is told by every later, cached pass too."""
    began = time.perf_counter()
    report = store.ingest(items, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - began
    written = report.added + report.updated
    guard = store.guard
    if written and written == report.total:
        with guard.lock.hold(LOCK_TIMEOUT_S):
            guard.set_metadata({**guard.metadata(), PASS_SECONDS_KEY: seconds,
                                PASS_ITEMS_KEY: written})
    recorded = guard.metadata()
    full = recorded.get(PASS_SECONDS_KEY)
    count = recorded.get(PASS_ITEMS_KEY)
    return CatalogPass(embedder=store.embedder.name, collection=store.collection.name,
                       items=report.total, written=written, unchanged=report.unchanged,
                       seconds=seconds,
                       full_pass_seconds=float(full) if full is not None else None,
                       full_pass_items=int(count) if count is not None else None)


def all_vectors(store: CatalogStore) -> tuple[list[str], np.ndarray]:
    """Every item id of the collection (sorted) and its stored vector, as matrix rows."""
    ids: list[str] = []
    rows: list[np.ndarray] = []
    offset = 0
    while True:
        got = store.collection.get(limit=READ_CHUNK, offset=offset, include=["embeddings"])
        embs = got["embeddings"] if got["embeddings"] is not None else []
        ids.extend(got["ids"])
        rows.extend(np.asarray(e, dtype=np.float32) for e in embs)
        if len(got["ids"]) < READ_CHUNK:
            break
        offset += READ_CHUNK
    if not ids:
        raise ConfigError(f"collection {store.collection.name!r} holds no vectors; run the "
                          "catalog pass (embed_catalog) first")
    order = sorted(range(len(ids)), key=lambda n: ids[n])
    return [ids[n] for n in order], np.stack([rows[n] for n in order])


class ItemVectorRetriever(SemanticRetriever):
    """The semantic retriever's rule over another embedder's item vectors (its collection
    holds the same items), reported under its own source name."""

    def __init__(self, store: CatalogStore, *, source: str = "llm_text",
                 dislike_weight: float = 0.5) -> None:
        super().__init__(store, dislike_weight=dislike_weight)
        self.source = source
