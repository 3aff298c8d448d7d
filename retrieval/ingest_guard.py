"""What keeps a collection whole across concurrent and killed ingests.

Two writers at once corrupt an embedded Chroma collection: each process keeps its own HNSW
index and persists it over the other's, leaving ids whose vectors cannot be read. So one
writer at a time holds a `WriterLock` for its whole ingest (an OS file lock, `filelock`;
the kernel releases it when the holder dies, even by SIGKILL):

- embedded Chroma: a file in the Chroma folder, one per collection
  (`<folder>/<collection>.ingest.lock`), so every process on every path spelling agrees;
- Chroma server: there is no shared folder, so the lock file lives in a local folder
  (`lock_dir`, by default `<tmp>/recagent-locks-<uid>`), named after the server URL and
  the collection. It excludes only writers on this machine that use the same folder;
  writers on other machines are not excluded.

A writer that finds the lock taken waits up to a timeout, then fails with a ConfigError.

Completion is recorded in the collection's metadata: `ingest = "incomplete"` is written
before the first item is, and `ingest = "complete"` with the input's digest and item count
only after the last. A SIGKILLed ingest therefore leaves "incomplete" behind, which
`check_marker` refuses; a collection without the key (made before the marker existed)
counts as complete.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import ChromaError
from filelock import FileLock, Timeout

from retrieval.errors import ConfigError, IncompleteCatalogError
from retrieval.stamp import VersionStamp

STATE_KEY = "ingest"
"""Collection metadata: "incomplete" while an ingest writes, "complete" once it finished."""
SOURCE_KEY = "ingest_source"
"""Collection metadata: digest of the last complete ingest's input (ids and contents)."""
ITEMS_KEY = "ingest_items"
"""Collection metadata: how many items the last complete ingest was given."""
INCOMPLETE, COMPLETE = "incomplete", "complete"
LOCK_TIMEOUT_S = 600.0
"""How long a second writer waits for the first before giving up."""


def default_lock_dir() -> Path:
    """Where server collections' lock files live unless a `lock_dir` is given: a folder
    of this user's in the temporary directory (a lock needs no state across reboots)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"recagent-locks-{uid}"


def lock_file(
    name: str, *, path: Path | None = None, url: str | None = None, lock_dir: Path | None = None
) -> Path:
    """The lock file of collection `name` in the Chroma folder `path` or on server `url`."""
    if path is not None:
        return path / f"{name}.ingest.lock"
    server = (url or "").rstrip("/").lower()
    key = hashlib.sha256(server.encode()).hexdigest()[:16]
    return (lock_dir or default_lock_dir()) / f"chroma-{key}-{name}.ingest.lock"


def stamp_file(lock: Path) -> Path:
    """The collection's version stamp (retrieval/stamp.py), beside its lock file."""
    return lock.with_name(lock.name.removesuffix(".ingest.lock") + ".version")


class WriterLock:
    """The one-writer-at-a-time lock of one collection."""

    def __init__(self, path: Path, collection: str) -> None:
        self.path = path
        self.collection = collection
        self._lock = FileLock(str(path))

    @contextmanager
    def hold(self, timeout_s: float, *, tell: bool = False) -> Iterator[None]:
        """Hold the lock for the duration; wait up to `timeout_s` if another writer has it
        (saying so on stderr if `tell`), then fail with a ConfigError."""
        if timeout_s < 0:
            raise ConfigError(f"lock_timeout_s must be at least 0, got {timeout_s}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if tell:
                print(f"waiting up to {timeout_s:g} s for another ingest of "
                      f"{self.collection!r} to finish…", file=sys.stderr, flush=True)
            try:
                self._lock.acquire(timeout=timeout_s)
            except Timeout:
                raise ConfigError(
                    f"another ingest of collection {self.collection!r} is running (it holds "
                    f"{self.path}); gave up after waiting {timeout_s:g} s: let it finish, "
                    "then run this ingest again"
                ) from None
        try:
            yield
        finally:
            self._lock.release()

    def busy(self) -> bool:
        """Whether some writer holds the lock now (False when that cannot be told)."""
        probe = FileLock(str(self.path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return True
        except OSError:
            return False
        probe.release()
        return False


class IngestGuard:
    """One collection's writer lock and completion marker (in its metadata)."""

    def __init__(
        self, collection: Collection, lock_path: Path | None = None,
        client: ClientAPI | None = None,
    ) -> None:
        """`lock_path` defaults to one named after the collection's id in
        `default_lock_dir()`; without `client` the metadata is not re-read."""
        self.collection = collection
        path = lock_path or default_lock_dir() / f"{collection.id}.ingest.lock"
        self.lock = WriterLock(path, collection.name)
        self.stamp = VersionStamp(stamp_file(path))
        """Written anew after every ingest that changed something (retrieval/stamp.py)."""
        self._client = client

    def metadata(self) -> dict[str, Any]:
        """The collection's metadata as stored now (another process may have changed it)."""
        if self._client is None:
            return dict(self.collection.metadata or {})
        with warnings.catch_warnings():  # no embedding function, on purpose (see store.py)
            warnings.filterwarnings("ignore", "legacy embedding function", DeprecationWarning)
            fresh = self._client.get_collection(self.collection.name, embedding_function=None)
        return dict(fresh.metadata or {})

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.collection.modify(metadata=dict(metadata))  # replaces the metadata, never merges

    def check(self) -> None:
        """Raise IncompleteCatalogError unless the collection's last ingest finished."""
        check_marker(self.collection.name, self.metadata(), self.collection.count(),
                     self.lock.busy)


def source_digest(hashes: Mapping[str, str]) -> str:
    """One digest of an ingest's input from its items' content hashes (by id)."""
    blob = "\n".join(f"{i}\t{hashes[i]}" for i in sorted(hashes))
    return hashlib.sha256(blob.encode()).hexdigest()


def marked_incomplete(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Collection metadata saying an ingest is writing (the last digest is dropped)."""
    kept = {k: v for k, v in metadata.items() if k not in (SOURCE_KEY, ITEMS_KEY)}
    return {**kept, STATE_KEY: INCOMPLETE}


def marked_complete(metadata: Mapping[str, Any], source: str, items: int) -> dict[str, Any]:
    """Collection metadata saying the ingest of `items` items with digest `source` finished."""
    return {**metadata, STATE_KEY: COMPLETE, SOURCE_KEY: source, ITEMS_KEY: items}


def check_marker(
    name: str, metadata: Mapping[str, Any], count: int, busy: Callable[[], bool]
) -> None:
    """Raise IncompleteCatalogError unless the collection's last ingest finished.

    No marker at all is a collection made before markers existed: complete."""
    state = metadata.get(STATE_KEY)
    if state is None:
        return
    if state != COMPLETE:
        if busy():
            raise IncompleteCatalogError(
                f"collection {name!r} is being written by an ingest that is still running "
                f"({count} items so far); wait for it to finish, or, if none is running, "
                "re-run the ingest to complete the catalog"
            )
        raise IncompleteCatalogError(
            f"collection {name!r} is incomplete: its last ingest did not finish (it was "
            f"killed or failed midway; {count} items are stored); re-run the ingest "
            f"(e.g. `recagent ingest --collection {name} ...`) to complete it"
        )
    expected = metadata.get(ITEMS_KEY)
    if isinstance(expected, int) and count < expected:
        raise IncompleteCatalogError(
            f"collection {name!r} holds {count} items, fewer than the {expected} its last "
            "ingest wrote; re-run the ingest to repair it"
        )


def unreadable(collection: Collection, ids: Sequence[str]) -> set[str]:
    """Those of `ids` (all stored) whose vectors cannot be read: absent, not finite, or
    failing in Chroma ("Error getting embedding", as two concurrent writers leave behind).
    A failing read is halved until the failing ids are found."""
    if not ids:
        return set()
    try:
        got = collection.get(ids=list(ids), include=["embeddings"])
    except ChromaError:
        if len(ids) == 1:
            return set(ids)
        half = len(ids) // 2
        return unreadable(collection, ids[:half]) | unreadable(collection, ids[half:])
    embs = got["embeddings"] if got["embeddings"] is not None else []
    readable = {
        id_ for id_, emb in zip(got["ids"], embs, strict=False)
        if emb is not None and np.asarray(emb).size and np.isfinite(emb).all()
    }
    return set(ids) - readable
