"""`recagent serve` as real processes on loopback, over a real `chroma run` server holding
the 24 mini items: SIGTERM with requests in flight, two replicas sharing one database and
one Chroma, and the Chroma server restarted under load."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from faultserver import fault_server

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.types import Item
from retrieval.embeddings import Embedder
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import check_items

pytestmark = pytest.mark.integration

HISTORY = [{"item_id": "a1", "liked": True}, {"item_id": "s1", "rating": 4}]
START_S = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {timeout_s} s:\n{log.read_text()}")
        time.sleep(0.2)


class Chroma:
    """A `chroma run` server that can be stopped and started again on its port and data."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.folder.parent / "chroma.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "chroma"), "run", "--path",
                 str(self.folder), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT)
        wait_until(f"{self.url}/api/v2/heartbeat", 60, self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder,
           mini_items: list[Item]) -> Iterator[Chroma]:
    server = Chroma(tmp_path_factory.mktemp("serve-chroma") / "data")
    server.start()
    try:
        CatalogStore.open(embedder, url=server.url, name="catalog").ingest(mini_items)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, artifact_store: ArtifactStore) -> Path:
    home = tmp_path_factory.mktemp("serve-home")
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    return home


class Service:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log
        self.http = httpx.Client(base_url=url, timeout=120)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.http.close()


@pytest.fixture
def serve(home: Path, chroma: Chroma, tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def start(*args: str) -> Service:
        port = free_port()
        log = tmp_path / f"serve{len(started)}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
        env.pop("RECAGENT_HOME", None)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "recagent.cli", "serve", "--home", str(home),
                 "--chroma-url", chroma.url, "--port", str(port), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        service = Service(proc, f"http://127.0.0.1:{port}", log)
        started.append(service)
        wait_until(f"{service.url}/healthz", START_S, proc, log)
        return service

    yield start
    for s in started:
        s.stop()


def test_sigterm_lets_requests_in_flight_finish_and_keeps_sessions(
        serve: Any, tmp_path: Path, catalog: dict[str, Item]) -> None:
    db = f"sqlite:///{tmp_path / 'sessions.sqlite'}"
    with fault_server("dribble", dribble_interval_s=0.003, hold_s=60) as llm:
        a = serve("--database", db, "--llm-base-url", llm.url, "--llm-model", "m",
                  "--method", "listwise", "--deadline", "30")
        sid = a.http.post("/v1/sessions", json={}).json()["session_id"]
        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(a.http.post, "/v1/recommend",
                                   json={"history": HISTORY, "k": 3}) for _ in range(3)]
            pending.append(pool.submit(a.http.post, f"/v1/sessions/{sid}/messages",
                                       json={"text": "I loved Toy Story, no horror"}))
            assert llm.wait_for(3, 60) >= 3  # the requests are in the LLM's hands
            a.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in pending]
        assert a.proc.wait(timeout=90) == 0, a.log.read_text()
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    for r in answers[:3]:
        check_items(r.json()["items"], catalog, {"a1", "s1"})
    check_items(answers[3].json()["items"], catalog, {"a1"})  # the chat turn liked Toy Story
    b = serve("--database", db, "--no-llm")  # the session outlived the process
    kept = b.http.get(f"/v1/sessions/{sid}").json()
    assert kept == answers[-1].json()
    assert [m["role"] for m in kept["messages"]] == ["user", "assistant"]


def test_two_replicas_on_one_database_and_chroma_agree(
        serve: Any, tmp_path: Path, catalog: dict[str, Item]) -> None:
    db = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    a, b = serve("--database", db, "--no-llm"), serve("--database", db, "--no-llm")
    sid = a.http.post("/v1/sessions", json={"k": 4}).json()["session_id"]
    view = a.http.post(f"/v1/sessions/{sid}/messages", json={"text": "I loved Star Wars"})
    assert b.http.get(f"/v1/sessions/{sid}").json() == view.json()
    seen = view.json()["items"][0]["item_id"]
    after = b.http.post(f"/v1/sessions/{sid}/feedback", json={"item_id": seen, "kind": "seen"})
    assert a.http.get(f"/v1/sessions/{sid}").json() == after.json()
    same = {"history": HISTORY, "k": 5, "filters": {"genres": ["Sci-Fi", "Animation"]}}
    assert a.http.post("/v1/recommend", json=same).json()["items"] == \
        b.http.post("/v1/recommend", json=same).json()["items"]

    texts = ["no horror", "more like Interstellar", "something romantic", "nothing before 1995",
             "I've seen Gravity", "any year"]
    with ThreadPoolExecutor(6) as pool:  # turns racing on one session, through both
        turns = list(pool.map(lambda n: (a, b)[n % 2].http.post(
            f"/v1/sessions/{sid}/messages", json={"text": texts[n]}), range(len(texts))))
    assert [t.status_code for t in turns] == [200] * len(texts), [t.text for t in turns]
    final = a.http.get(f"/v1/sessions/{sid}").json()
    said = [m["text"] for m in final["messages"] if m["role"] == "user"]
    assert sorted(said) == sorted(["I loved Star Wars", *texts])  # no turn lost
    check_items(final["items"], catalog, {"s1", seen})
    assert b.http.get(f"/v1/sessions/{sid}").json() == final


def test_chroma_restarted_under_load(serve: Any, chroma: Chroma, tmp_path: Path,
                                     catalog: dict[str, Item]) -> None:
    service = serve("--database", f"sqlite:///{tmp_path / 's.sqlite'}", "--no-llm",
                    "--deadline", "30")
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    done = threading.Event()

    def client() -> None:
        while True:
            with lock:
                if len(answers) >= 60:
                    return
            r = service.http.post("/v1/recommend", json={"history": HISTORY, "k": 4})
            with lock:
                answers.append(r)
                if len(answers) >= 10:
                    done.set()

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(client) for _ in range(4)]
        assert done.wait(120)
        chroma.stop()
        not_ready = service.http.get("/readyz")
        time.sleep(1.0)
        chroma.start()
        for f in running:
            f.result()
    assert not_ready.status_code == 503 and not_ready.json()["chroma"] is False
    assert [r.status_code for r in answers] == [200] * len(answers), \
        [r.text for r in answers if r.status_code != 200]
    for r in answers:
        check_items(r.json()["items"], catalog, {"a1", "s1"})
    assert service.http.get("/readyz").json()["chroma"] is True
    print(f"\nChroma restarted under load: {len(answers)} requests, all 200")
