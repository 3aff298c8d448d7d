"""`recagent serve --workers 2`: two processes on one port answer within the invariants,
and SIGTERM to the parent stops both cleanly."""

from __future__ import annotations

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


def test_two_workers_share_the_port_and_stop_on_sigterm(
        tmp_path: Path, artifact_store: ArtifactStore, embedder: Embedder,
        mini_items: list[Item], catalog: dict[str, Item]) -> None:
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    CatalogStore.open(embedder, path=tmp_path / "chroma").ingest(mini_items)
    port, log = _free_port(), tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recagent.cli", "serve", "--home", str(tmp_path),
             "--port", str(port), "--no-llm", "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT)
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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "with 2 workers" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
