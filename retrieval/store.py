"""The catalog as a Chroma collection, embedded on disk or behind a `chroma run` server.

Vectors are always computed by our own `Embedder` (Chroma's default one would download
a model). Ingestion is idempotent and all-or-nothing: a content hash per item decides
what to write (an unreadable stored vector is rewritten), a failed write is undone before
the error propagates, writers exclude each other, and a killed ingest is refused by
`check_complete` (see ingest_guard.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.config import Settings
from chromadb.errors import ChromaError
from filelock import FileLock
from tqdm import tqdm

from retrieval import ingest_guard
from retrieval.catalog_read import (
    SEARCH_EF,
    CatalogReader,
    hnsw_configuration,
    no_legacy_warning,
)
from retrieval.catalog_rows import (
    HASH_KEY,
    INTERNAL_PREFIX,
    READ_CHUNK,
    TITLE_KEY,
    VECTOR_KEY,
    item_from_row,
)
from retrieval.catalog_rows import chunks as _chunks
from retrieval.embeddings import Embedder
from retrieval.errors import ConfigError
from retrieval.ingest_guard import IngestGuard
from retrieval.memory_index import MemoryIndex
from retrieval.types import IngestReport, Item, MetadataValue

__all__ = ["HASH_KEY", "INTERNAL_PREFIX", "READ_CHUNK", "SEARCH_EF", "TITLE_KEY", "VECTOR_KEY",
           "CatalogStore", "item_from_row"]

EMBEDDER_KEY = "embedder"
"""Collection metadata: the embedder whose vectors the collection holds."""
OPEN_TIMEOUT_S = 120.0
"""Longest wait for another process opening the same embedded Chroma folder."""


def _digest(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class CatalogStore(CatalogReader):
    """Items, their texts and vectors in one Chroma collection (cosine space); the reads
    are CatalogReader's (retrieval/catalog_read.py), from memory unless `memory=False`."""

    def __init__(self, collection: chromadb.Collection, embedder: Embedder, *,
                 guard: IngestGuard | None = None, memory: bool = True) -> None:
        built_with = (collection.metadata or {}).get(EMBEDDER_KEY)
        if built_with is not None and built_with != embedder.name:
            raise ConfigError(
                f"collection {collection.name!r} holds vectors of {built_with!r}, not of "
                f"{embedder.name!r}; use another collection name or delete this one"
            )
        self.collection = collection
        self.embedder = embedder
        self.guard = guard or IngestGuard(collection)
        self.memory = MemoryIndex(collection, self.guard.stamp) if memory else None

    @classmethod
    def open(
        cls,
        embedder: Embedder,
        *,
        path: Path | None = None,
        url: str | None = None,
        name: str = "catalog",
        search_ef: int = SEARCH_EF,
        lock_dir: Path | None = None,
        memory: bool = True,
    ) -> CatalogStore:
        """Open (or create) the collection in a local folder or on a Chroma server; an
        existing collection is switched to `search_ef` (see SEARCH_EF). Writers lock a file
        in the Chroma folder, or for a server one in `lock_dir` (see ingest_guard.py).
        `memory`: answer reads from an in-memory image (see catalog_read.py)."""
        if (path is None) == (url is None):
            raise ConfigError("give exactly one of path (embedded Chroma) or url (Chroma server)")
        if search_ef < 1:
            raise ConfigError(f"search_ef must be at least 1, got {search_ef}")
        settings = Settings(anonymized_telemetry=False)
        try:
            if path is not None:
                # two processes creating one folder race in Chroma's migration: one at a time
                path.mkdir(parents=True, exist_ok=True)
                with FileLock(str(path / "open.lock"), timeout=OPEN_TIMEOUT_S):
                    client = chromadb.PersistentClient(path=str(path), settings=settings)
            else:
                client = _http_client(cast(str, url), settings)
            collection = client.get_or_create_collection(
                name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine", "ef_search": search_ef}},
                metadata={EMBEDDER_KEY: embedder.name},
            )
            hnsw = hnsw_configuration(collection)
            if hnsw.get("ef_search") != search_ef:
                with no_legacy_warning():
                    collection.modify(configuration={"hnsw": {"ef_search": search_ef}})
        except (ChromaError, ValueError) as e:
            where = path if path is not None else url
            raise ConfigError(f"cannot open Chroma collection {name!r} at {where}: {e}") from e
        space = hnsw.get("space")
        if space not in (None, "cosine"):
            raise ConfigError(
                f"collection {name!r} uses the {space!r} distance, not cosine; use another name"
            )
        lock = ingest_guard.lock_file(name, path=path, url=url, lock_dir=lock_dir)
        return cls(collection, embedder, guard=IngestGuard(collection, lock, client),
                   memory=memory)

    # ---- ingestion -------------------------------------------------------------------

    def ingest(
        self,
        items: Sequence[Item],
        *,
        batch_size: int = 256,
        progress: bool = False,
        lock_timeout_s: float = ingest_guard.LOCK_TIMEOUT_S,
    ) -> IngestReport:
        """Embed and write only new or changed items (or ones whose stored vector cannot be
        read); on any failure undo the writes. Holds the collection's writer lock: a second
        writer waits up to `lock_timeout_s`, then fails with a ConfigError. The collection is
        marked incomplete before the first write, complete after the last."""
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self._check(items)
        with self.guard.lock.hold(lock_timeout_s, tell=progress):
            return self._ingest_locked(items, batch_size, progress)

    def _ingest_locked(
        self, items: Sequence[Item], batch_size: int, progress: bool
    ) -> IngestReport:
        stored, broken = self._stored([i.id for i in items])
        rows = {i.id: self._row(i) for i in items}
        new = [i for i in items if i.id not in stored]
        changed = [i for i in items if i.id in stored
                   and (i.id in broken or stored[i.id].get(HASH_KEY) != rows[i.id][HASH_KEY])]
        before = self.guard.metadata()
        source = ingest_guard.source_digest({i: str(r[HASH_KEY]) for i, r in rows.items()})
        done = ingest_guard.marked_complete(before, source, len(items))
        if not new and not changed:
            if done != before:
                self.guard.set_metadata(done)
            return IngestReport(unchanged=len(items), total=len(items))

        # an unreadable vector cannot be snapshot: such an item is rewritten, not restored
        snapshot = self._snapshot([i.id for i in changed if i.id not in broken])
        work = {i.id for i in new} | {i.id for i in changed}
        todo = [i for i in items if i.id in work]  # input order
        vectors = self._vectors_for(todo, rows, snapshot, batch_size, progress)
        try:
            self.guard.set_metadata(ingest_guard.marked_incomplete(before))
            with tqdm(total=len(todo), desc="writing", unit="item", disable=not progress) as bar:
                for start in range(0, len(todo), batch_size):
                    batch = todo[start : start + batch_size]
                    self.collection.upsert(
                        ids=[i.id for i in batch],
                        embeddings=vectors[start : start + batch_size],
                        documents=[i.text for i in batch],
                        metadatas=[rows[i.id] for i in batch],
                    )
                    bar.update(len(batch))
            self.guard.set_metadata(done)  # last: only now is the ingest complete
        except BaseException as failure:
            try:
                self._rollback([i.id for i in new], snapshot)
                self.guard.set_metadata(before)
            except Exception as undo:
                failure.add_note(f"rolling back the partial ingestion also failed: {undo!r}")
            raise
        finally:  # written or rolled back: readers' in-memory images are out of date
            self.guard.stamp.bump()
        return IngestReport(added=len(new), updated=len(changed),
                            unchanged=len(items) - len(todo), total=len(items))

    @staticmethod
    def _check(items: Sequence[Item]) -> None:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ConfigError(f"item id {item.id!r} appears more than once in the input")
            seen.add(item.id)
            reserved = [k for k in item.metadata if k.startswith(INTERNAL_PREFIX)]
            if reserved:
                raise ConfigError(
                    f"item {item.id!r}: metadata keys starting with {INTERNAL_PREFIX!r} are "
                    f"reserved: {reserved}"
                )

    def _row(self, item: Item) -> dict[str, MetadataValue]:
        """Chroma metadata: the Item's own keys plus prefixed bookkeeping keys."""
        vector_key = _digest(self.embedder.name, item.text)
        content = _digest(item.id, item.title, item.text, item.metadata, vector_key)
        return {**item.metadata, TITLE_KEY: item.title, VECTOR_KEY: vector_key, HASH_KEY: content}

    def _stored(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """Stored metadata by id, and the stored ids whose vector cannot be read."""
        found: dict[str, dict[str, Any]] = {}
        broken: set[str] = set()
        for chunk in _chunks(ids, READ_CHUNK):
            got = self.collection.get(ids=list(chunk), include=["metadatas"])
            for id_, md in zip(got["ids"], got["metadatas"] or [], strict=True):
                found[id_] = dict(md or {})
            broken |= ingest_guard.unreadable(self.collection, got["ids"])
        return found, broken

    def _snapshot(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
        """What the changed items look like now: enough to restore them exactly."""
        snap: dict[str, tuple[str, dict[str, Any], np.ndarray]] = {}
        for chunk in _chunks(ids, READ_CHUNK):
            got = self.collection.get(
                ids=list(chunk), include=["documents", "metadatas", "embeddings"]
            )
            docs, mds = got["documents"] or [], got["metadatas"] or []
            embs = got["embeddings"] if got["embeddings"] is not None else []
            for id_, doc, md, emb in zip(got["ids"], docs, mds, embs, strict=True):
                snap[id_] = (doc or "", dict(md or {}), np.asarray(emb, dtype=np.float32))
        return snap

    def _vectors_for(
        self,
        todo: Sequence[Item],
        rows: dict[str, dict[str, MetadataValue]],
        snapshot: dict[str, tuple[str, dict[str, Any], np.ndarray]],
        batch_size: int,
        progress: bool,
    ) -> np.ndarray:
        """Vectors for `todo`, embedding only texts whose stored vector does not fit."""
        reuse = {
            i.id: snapshot[i.id][2]
            for i in todo
            if i.id in snapshot and snapshot[i.id][1].get(VECTOR_KEY) == rows[i.id][VECTOR_KEY]
        }
        to_embed = [i for i in todo if i.id not in reuse]
        fresh: dict[str, np.ndarray] = {}
        with tqdm(total=len(to_embed), desc="embedding", unit="item", disable=not progress) as bar:
            for chunk in _chunks(to_embed, batch_size):
                out = np.asarray(self.embedder.embed([i.text for i in chunk]), dtype=np.float32)
                if out.ndim != 2 or out.shape[0] != len(chunk) or not np.isfinite(out).all():
                    raise ConfigError(
                        f"embedder {self.embedder.name!r} returned an array of shape "
                        f"{out.shape} (or non-finite values) for {len(chunk)} texts"
                    )
                fresh.update(zip((i.id for i in chunk), out, strict=True))
                bar.update(len(chunk))
        return np.stack([reuse[i.id] if i.id in reuse else fresh[i.id] for i in todo])

    def _rollback(
        self, added: Sequence[str], snapshot: dict[str, tuple[str, dict[str, Any], np.ndarray]]
    ) -> None:
        for chunk in _chunks(added, READ_CHUNK):
            self.collection.delete(ids=list(chunk))
        restore = list(snapshot)
        for chunk in _chunks(restore, READ_CHUNK):
            self.collection.upsert(
                ids=list(chunk),
                embeddings=np.stack([snapshot[i][2] for i in chunk]),
                documents=[snapshot[i][0] for i in chunk],
                metadatas=[snapshot[i][1] for i in chunk],
            )


def _http_client(url: str, settings: Settings) -> ClientAPI:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Chroma url must look like http://host:port, got {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8000)
    except ValueError as e:
        raise ConfigError(f"Chroma url {url!r}: {e}") from e
    return chromadb.HttpClient(
        host=parts.hostname, port=port, ssl=parts.scheme == "https", settings=settings
    )
