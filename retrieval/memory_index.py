"""The in-memory image of one catalog collection: every item's record and vector.

A recommendation reads a few dozen item records and one nearest-neighbour list; fetched
from Chroma one call at a time that was most of a request's time (measured: ~60% of
137 ms in `get` calls for ML-100K's 1,682 items, which fit in a few megabytes). The image
is read once per process and kept until the collection's version stamp changes: every
ingest writes a new stamp (retrieval/stamp.py) after its last write, and the next read
after that loads the image again, so no stale record is ever served. A `where` filter is
Chroma's own (its operators, list-valued attributes and all): the ids it admits are asked
of Chroma once per filter and image.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import chromadb
import numpy as np
from chromadb.errors import ChromaError

from retrieval.catalog_rows import item_from_row
from retrieval.ingest_guard import unreadable
from retrieval.stamp import VersionStamp
from retrieval.types import Item

LOAD_CHUNK = 5000
"""Rows per Chroma read while loading the image."""
TIE_MARGIN = 64
"""Items past the n-th that a nearest-neighbour answer sorts, so that ties at the cut are
ordered by id."""
SCORE_DECIMALS = 6
"""Cosines are compared (and returned) to this many decimals."""
FILTERS_KEPT = 64
"""`where` filters whose admitted ids an image remembers (least recently used dropped)."""


@dataclass(frozen=True)
class Admitted:
    """The items a `where` filter admits: ids, and the same as a row mask."""

    ids: frozenset[str]
    mask: np.ndarray


@dataclass
class Image:
    """One consistent reading of the collection (rows in Chroma's order)."""

    token: str
    ids: list[str]
    documents: list[str | None]
    metadatas: list[Any]
    vectors: np.ndarray
    """(items, dim) float32, as stored (NaN rows: `broken`)."""
    broken: frozenset[str] = frozenset()
    """Items whose stored vector Chroma cannot read."""
    row: dict[str, int] = field(init=False)
    inverse_norm: np.ndarray = field(init=False)
    _items: dict[str, Item] = field(init=False, default_factory=dict)
    filters: OrderedDict[str, Admitted] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.row = {i: n for n, i in enumerate(self.ids)}
        norms = np.linalg.norm(self.vectors, axis=1) if len(self.ids) else np.zeros(0)
        usable = np.isfinite(norms) & (norms > 0)
        self.inverse_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=usable
                                      ).astype(np.float32)
        if self.broken:
            self.vectors[[self.row[i] for i in self.broken]] = 0.0

    def item(self, id_: str) -> Item:
        """The Item of a held id (built on first use, then kept)."""
        found = self._items.get(id_)
        if found is None:
            n = self.row[id_]
            found = self._items.setdefault(
                id_, item_from_row(id_, self.documents[n], self.metadatas[n]))
        return found

    def nearest(self, query: np.ndarray, n: int, excluded: set[str],
                admitted: Admitted | None) -> list[tuple[str, float]]:
        """The n items of largest cosine with `query`, as (id, cosine), best first; ties
        ordered by id (so a tie across the cut is settled by id); exact. Only the best
        n + TIE_MARGIN are sorted (a partial sort first: cheap at a million items)."""
        if not self.ids:
            return []
        norm = float(np.linalg.norm(query))
        q = query / norm if norm > 0 else query
        scores = self.vectors @ q
        scores *= self.inverse_norm
        if admitted is not None:
            scores[~admitted.mask] = -np.inf
        gone = [self.row[i] for i in excluded | self.broken if i in self.row]
        if gone:
            scores[gone] = -np.inf
        take = min(n + TIE_MARGIN, len(scores))
        near = np.argpartition(-scores, take - 1)[:take] if take < len(scores) \
            else np.arange(len(scores))
        # rounded: one text embedded in two batches differs in the last bits, and the
        # same vector must tie (and be ordered by id), not win by rounding noise
        rounded = dict(zip(near.tolist(), np.round(scores[near], SCORE_DECIMALS).tolist(),
                           strict=True))
        ranked = sorted((j for j, score in rounded.items() if score != -np.inf),
                        key=lambda j: (-rounded[j], self.ids[j]))
        return [(self.ids[j], rounded[j]) for j in ranked[:n]]


class MemoryIndex:
    """The current image of a collection, reloaded when its version stamp changes."""

    def __init__(self, collection: chromadb.Collection, stamp: VersionStamp) -> None:
        self.collection = collection
        self.stamp = stamp
        self._image: Image | None = None
        self._lock = threading.Lock()
        self.loads = 0
        """Images loaded so far (each a full read of the collection)."""

    def current(self) -> Image:
        """The image for the collection as of its last finished ingest."""
        token = self.stamp.read()
        image = self._image
        if image is not None and image.token == token:
            return image
        with self._lock:  # one load at a time; the others then use it
            image = self._image
            if image is None or image.token != token:
                image = self._load(token)
                self._image = image
        return image

    def allowed(self, image: Image, where: dict[str, Any] | None) -> Admitted | None:
        """What `where` admits (None: no filter), asked of Chroma once per image."""
        if not where:
            return None
        key = json.dumps(where, sort_keys=True, default=str)
        found = image.filters.get(key)
        if found is None:
            ids = self._ids_where(where)
            mask = np.zeros(len(image.ids), dtype=bool)
            mask[[image.row[i] for i in ids if i in image.row]] = True
            found = Admitted(frozenset(ids), mask)
            image.filters[key] = found
            while len(image.filters) > FILTERS_KEPT:
                image.filters.popitem(last=False)
        else:
            image.filters.move_to_end(key)
        return found

    def _ids_where(self, where: dict[str, Any]) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            got = self.collection.get(where=where, include=[], limit=LOAD_CHUNK, offset=offset)
            ids.extend(got["ids"])
            if len(got["ids"]) < LOAD_CHUNK:
                return ids
            offset += LOAD_CHUNK

    def _load(self, token: str) -> Image:
        ids: list[str] = []
        docs: list[str | None] = []
        mds: list[Any] = []
        vectors: list[np.ndarray] = []
        broken: set[str] = set()
        offset = 0
        while True:
            got = self.collection.get(limit=LOAD_CHUNK, offset=offset,
                                      include=["documents", "metadatas"])
            chunk = list(got["ids"])
            ids.extend(chunk)
            docs.extend(got["documents"] or [None] * len(chunk))
            mds.extend(got["metadatas"] or [None] * len(chunk))
            if chunk:
                block, bad = self._vectors(chunk)
                vectors.append(block)
                broken |= bad
            if len(chunk) < LOAD_CHUNK:
                break
            offset += LOAD_CHUNK
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
        self.loads += 1
        return Image(token, ids, docs, mds, matrix, frozenset(broken))

    def _vectors(self, ids: list[str]) -> tuple[np.ndarray, set[str]]:
        """The stored vectors of `ids` as rows; an unreadable one (two concurrent writers
        leave such) is a row of NaN, and named, so that reading it still fails as it does
        in Chroma while every other item is served."""
        try:
            got = self.collection.get(ids=ids, include=["embeddings"])
            bad: set[str] = set()
        except ChromaError:
            bad = unreadable(self.collection, ids)
            got = self.collection.get(ids=[i for i in ids if i not in bad],
                                      include=["embeddings"])
        embs = got["embeddings"] if got["embeddings"] is not None else []
        by_id = dict(zip(got["ids"], embs, strict=True))
        dim = len(next(iter(by_id.values()))) if by_id else 0
        rows = np.full((len(ids), dim), np.nan, dtype=np.float32)
        for n, i in enumerate(ids):
            if i in by_id and i not in bad:
                rows[n] = by_id[i]
        return rows, bad | {i for i in ids if i not in by_id}

