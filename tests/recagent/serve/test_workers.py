"""`recagent serve --workers 2`: two processes on one port answer within the invariants,
and SIGTERM to the parent stops both cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.types import Item
from retrieval.embeddings import Embedder
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import check_items

pytestmark = pytest.mark.integration
HISTORY = [{"item_id": "a1", "liked": True}, {"item_id": "s1", "rating": 4}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(home: Path, artifact_store: ArtifactStore, embedder: Embedder,
           mini_items: list[Item]) -> tuple[subprocess.Popen[bytes], int, Path]:
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    CatalogStore.open(embedder, path=home / "chroma").ingest(mini_items)
    port, log = _free_port(), home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recagent.cli", "serve", "--home", str(home),
             "--port", str(port), "--no-llm", "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT)
    return proc, port, log


def _workers(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _stop_and_check(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM to the parent: it exits 0 and leaves no worker behind."""
    workers = _workers(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 90 s after SIGTERM; workers {workers}, "
                    f"left {_workers(proc.pid)}; log:\n{log.read_text()}")
    assert code == 0, log.read_text()
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_two_workers_share_the_port_and_stop_on_sigterm(
        tmp_path: Path, artifact_store: ArtifactStore, embedder: Embedder,
        mini_items: list[Item], catalog: dict[str, Item]) -> None:
    proc, port, log = _start(tmp_path, artifact_store, embedder, mini_items)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.post(
                "/v1/recommend", json={"history": HISTORY, "k": 4}), range(32)))
        assert [a.status_code for a in answers] == [200] * 32
        for a in answers:
            check_items(a.json()["items"], catalog, {"a1", "s1"})
        http.close()
        _stop_and_check(proc, log)
        assert "with 2 workers" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_while_the_workers_start_stops_them_all(
        tmp_path: Path, artifact_store: ArtifactStore, embedder: Embedder,
        mini_items: list[Item]) -> None:
    """The race a full test run once lost: SIGTERM reaches a worker opening its parts."""
    proc, _, log = _start(tmp_path, artifact_store, embedder, mini_items)
    try:
        deadline = time.monotonic() + 120
        while "with 2 workers" not in log.read_text():  # forked, not yet serving
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        _stop_and_check(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
