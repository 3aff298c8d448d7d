"""Concurrent and killed ingests, with real processes and a real Chroma (embedded and server).

Each child is `python -c _CHILD` opening a CatalogStore with the real ONNX embedder. Every
wait is bounded; nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.errors import InternalError
from conftest import REPO

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.types import IngestReport, Item
from retrieval import ingest_guard
from retrieval.embeddings import OnnxEmbedder
from retrieval.errors import IncompleteCatalogError
from retrieval.store import CatalogStore

WAIT_S = 180
"""Upper bound of any one wait for a child process."""

_CHILD = r"""
import json, sys, time
from pathlib import Path
from retrieval import ingest_guard
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore
from retrieval.types import Item

a = json.loads(sys.argv[1])
embedder = OnnxEmbedder(Path(a["onnx"]), Path(a["tokenizer"]))
where = {"url": a["url"], "lock_dir": Path(a["lock_dir"])} if a.get("url") else {
    "path": Path(a["path"])}
store = CatalogStore.open(embedder, name=a["name"], **where)
if a.get("mode") == "hold":  # what an ingest looks like from outside while it writes
    with store.guard.lock.hold(0):
        store.guard.set_metadata(ingest_guard.marked_incomplete(store.guard.metadata()))
        print("held", flush=True)
        sys.stdin.read()
    sys.exit(0)
items = [Item(id=f"g{n}", title=f"Film {n}", text=f"Film {n}: a tiny plot, number {n}.")
         for n in range(a["n"])]
if a.get("barrier"):  # both children open the store, then start ingesting together
    Path(a["barrier"] + "." + a["who"]).touch()
    deadline = time.monotonic() + 120
    while not Path(a["barrier"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
report = store.ingest(items, batch_size=a["batch"], progress=a.get("progress", False),
                      lock_timeout_s=a.get("lock_timeout_s", 600))
print(report.model_dump_json(), flush=True)
"""


def _items(n: int) -> list[Item]:
    """The children's catalog, rebuilt here to compare."""
    return [Item(id=f"g{k}", title=f"Film {k}", text=f"Film {k}: a tiny plot, number {k}.")
            for k in range(n)]


@pytest.fixture
def child(artifact_store: ArtifactStore) -> Iterator[Any]:
    """Start `python -c _CHILD` processes; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    paths = {"onnx": str(artifact_store.path("minilm-onnx")),
             "tokenizer": str(artifact_store.path("minilm-tokenizer"))}

    def start(**args: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps({**paths, **args})], cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_S)


def _report(proc: subprocess.Popen[str]) -> IngestReport:
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err[-3000:]
    return IngestReport.model_validate_json(out.strip().splitlines()[-1])


def _race(child: Any, barrier: Path, **args: Any) -> list[IngestReport]:
    """Two children ingesting the same collection, released at the same moment."""
    procs = [child(**args, barrier=str(barrier), who=who) for who in ("a", "b")]
    deadline = time.monotonic() + WAIT_S
    while not all(Path(f"{barrier}.{who}").exists() for who in ("a", "b")):
        assert all(p.poll() is None for p in procs), [p.communicate()[1][-3000:] for p in procs]
        assert time.monotonic() < deadline, "the children did not get ready"
        time.sleep(0.05)
    barrier.touch()
    return sorted((_report(p) for p in procs), key=lambda r: r.added)


def _assert_whole(store: CatalogStore, n: int) -> None:
    """Every item is there, its vector readable, and the index finds all of them."""
    ids = [i.id for i in _items(n)]
    assert store.count() == n
    assert ingest_guard.unreadable(store.collection, ids) == set()
    vectors = store.vectors(ids)
    assert len(vectors) == n and all(np.isfinite(v).all() for v in vectors.values())
    assert len(store.query(vectors[ids[0]], n)) == n
    store.check_complete()


def test_two_ingests_at_once_take_turns(
    child: Any, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    n = 600
    reports = _race(child, tmp_path / "go", path=str(tmp_path / "chroma"), name="race", n=n,
                    batch=25)
    # one wrote everything; the other waited for the lock and then found nothing to do
    assert reports == [IngestReport(unchanged=n, total=n), IngestReport(added=n, total=n)]
    store = CatalogStore.open(embedder, path=tmp_path / "chroma", name="race")
    _assert_whole(store, n)
    assert (tmp_path / "chroma" / "race.ingest.lock").is_file()


def test_a_second_writer_gives_up_after_the_timeout(
    child: Any, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    store = CatalogStore.open(embedder, path=tmp_path / "chroma", name="busy")
    store.ingest(_items(5))
    holder = child(mode="hold", path=str(tmp_path / "chroma"), name="busy")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"

    with pytest.raises(ConfigError, match=r"another ingest of collection 'busy' is running"):
        store.ingest(_items(8), lock_timeout_s=0.5)
    with pytest.raises(IncompleteCatalogError, match=r"'busy' is being written by an ingest "
                       r"that is still running"):
        store.check_complete()

    holder.communicate(input="", timeout=WAIT_S)  # the writer finishes (without a marker)
    assert holder.returncode == 0
    with pytest.raises(IncompleteCatalogError, match="did not finish"):
        store.check_complete()
    assert store.ingest(_items(8), lock_timeout_s=0.5) == IngestReport(
        added=3, unchanged=5, total=8)
    _assert_whole(store, 8)


def _drop_vectors(chroma: Path, ids: list[str]) -> None:
    """Make stored vectors unreadable, as two concurrent writers did: a small collection's
    HNSW index is rebuilt from Chroma's write log when a process opens it, so ids missing
    from the log are in the collection without a vector (Chroma's InternalError).
    This edits Chroma's own SQLite file; it holds for chromadb 1.x."""
    with sqlite3.connect(chroma / "chroma.sqlite3") as db:
        marks = ",".join("?" * len(ids))
        deleted = db.execute(f"DELETE FROM embeddings_queue WHERE id IN ({marks})", ids)
        assert deleted.rowcount == len(ids)


def test_reingest_repairs_unreadable_vectors(
    child: Any, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    chroma = tmp_path / "chroma"
    first = child(path=str(chroma), name="broken", n=40, batch=40)
    assert _report(first) == IngestReport(added=40, total=40)
    _drop_vectors(chroma, ["g3", "g17"])

    store = CatalogStore.open(embedder, path=chroma, name="broken")
    assert store.count() == 40
    assert ingest_guard.unreadable(store.collection, [i.id for i in _items(40)]) == {"g3", "g17"}
    with pytest.raises(InternalError):  # what `recommend` died of
        store.vectors(["g3"])

    assert store.ingest(_items(40)) == IngestReport(updated=2, unchanged=38, total=40)
    _assert_whole(store, 40)
    np.testing.assert_allclose(store.vectors(["g3"])["g3"],
                               embedder.embed([_items(40)[3].text])[0], atol=1e-5)
    assert store.ingest(_items(40)) == IngestReport(unchanged=40, total=40)


_WRITING = re.compile(r"writing:\s+\d+%\|[^|]*\|\s*([1-9]\d*)/")


def test_a_killed_ingest_is_refused_until_ingested_again(
    child: Any, embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    n, chroma = 1000, tmp_path / "chroma"  # 200 small batches: slow enough to kill midway
    proc = child(path=str(chroma), name="killed", n=n, batch=5, progress=True)
    # its progress bars go to stderr; kill it once some batches are written
    stderr: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: stderr.extend(iter(
        lambda: os.read(proc.stderr.fileno(), 4096).decode(errors="replace"), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + WAIT_S
    while not _WRITING.search("".join(stderr)):
        assert proc.poll() is None, "".join(stderr)[-3000:]
        assert time.monotonic() < deadline, "the ingest did not start writing"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=WAIT_S)
    assert proc.returncode == -signal.SIGKILL

    store = CatalogStore.open(embedder, path=chroma, name="killed")
    written = store.count()
    assert 0 < written < n
    with pytest.raises(IncompleteCatalogError, match=r"'killed' is incomplete: its last "
                       r"ingest did not finish.*re-run the ingest"):
        store.check_complete()

    # the kernel released the dead writer's lock: the re-ingest need not wait
    report = store.ingest(_items(n), lock_timeout_s=5)
    assert report.added + report.updated == n - report.unchanged and report.total == n
    assert report.added >= n - written
    _assert_whole(store, n)


@pytest.mark.integration
def test_two_ingests_at_once_on_a_chroma_server(
    child: Any, embedder: OnnxEmbedder, chroma_server: str, tmp_path: Path
) -> None:
    n, locks = 300, tmp_path / "locks"
    reports = _race(child, tmp_path / "go", url=chroma_server, lock_dir=str(locks),
                    name="server-race", n=n, batch=25)
    assert reports == [IngestReport(unchanged=n, total=n), IngestReport(added=n, total=n)]
    [lock] = locks.glob("*server-race.ingest.lock")  # keyed by server URL and collection
    store = CatalogStore.open(embedder, url=chroma_server, name="server-race", lock_dir=locks)
    assert store.guard.lock.path == lock
    _assert_whole(store, n)
    assert store.guard.metadata()[ingest_guard.STATE_KEY] == "complete"
