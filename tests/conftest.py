"""Shared fixtures: the real ONNX embedder, small catalogs, and a real `chroma run` server."""

from __future__ import annotations

import os

# Before chromadb is imported anywhere: no telemetry, and no model hub, ever.
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.vllm_model import PreparedModel, VLLMModelPreparer
from recagent.types import Item
from retrieval.catalog_files import load_movielens
from retrieval.embeddings import Embedder, OnnxEmbedder
from retrieval.store import CatalogStore

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RECAGENT_TEST_DATA", REPO.parent / "shared" / "data"))

VLLM_PYTHON = Path(os.environ.get("RECAGENT_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
"""The vLLM environment (`make vllm-venv`) that the `vllm` tests run a real server from."""

ML100K = DATA / "ml-100k"

needs_data = pytest.mark.skipif(
    not (DATA / "ml-100k" / "u.item").is_file(),
    reason=f"MovieLens data not found under {DATA} (set RECAGENT_TEST_DATA)",
)


@pytest.fixture(scope="session")
def artifact_store() -> ArtifactStore:
    """The test run's model cache. Created here: tests link their homes' `artifacts` to it,
    and a link to a folder that does not exist yet (a clean clone) would break them."""
    store = ArtifactStore(REPO / ".cache" / "artifacts")
    store.cache_dir.mkdir(parents=True, exist_ok=True)
    return store


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """Fails, never skips, without the vLLM environment: `make test` builds it first."""
    if not VLLM_PYTHON.is_file():
        pytest.fail(f"{VLLM_PYTHON} not found: the vLLM tests need `make vllm-venv` "
                    "(`make test` builds it first)")
    return VLLM_PYTHON


@pytest.fixture(scope="session")
def vllm_preparer(artifact_store: ArtifactStore, vllm_python: Path) -> VLLMModelPreparer:
    return VLLMModelPreparer(artifact_store, REPO / ".cache" / "vllm-models", python=vllm_python)


@pytest.fixture(scope="session")
def vllm_prepared(vllm_preparer: VLLMModelPreparer) -> PreparedModel:
    """SmolLM2-135M's GGUF as a Hugging Face folder, converted once (then reused)."""
    return vllm_preparer.prepare("smollm2-135m")


@pytest.fixture(scope="session")
def embedder(artifact_store: ArtifactStore) -> OnnxEmbedder:
    return OnnxEmbedder(artifact_store.path("minilm-onnx"), artifact_store.path("minilm-tokenizer"))


class CountingEmbedder:
    """Wraps the real embedder and records how many texts it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.inner.embed(texts)

    @property
    def embedded(self) -> int:
        return sum(self.calls)


@pytest.fixture
def counting_embedder(embedder: OnnxEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


GENRES = ("Horror", "Animation", "Sci-Fi", "Romance")

_MINI = """
h1|The Haunting of Hill House|Horror|A family is terrorised by ghosts in a haunted mansion.
h2|Night of the Living Dead|Horror|Zombies besiege a farmhouse; flesh-eating corpses rise.
h3|The Exorcist|Horror|A priest fights the demon that has possessed a young girl.
h4|Halloween|Horror|A masked serial killer stalks teenage babysitters with a knife.
h5|Poltergeist|Horror|Evil spirits haunt a suburban house and kidnap a little girl.
h6|The Ring|Horror|A cursed videotape kills whoever watches it within seven days; a ghost.
a1|Toy Story|Animation|Animated toys come to life: a cowboy doll and a space ranger toy.
a2|Finding Nemo|Animation|An animated clownfish father searches the ocean for his lost son.
a3|The Lion King|Animation|An animated lion cub grows up to reclaim his kingdom; songs for kids.
a4|Shrek|Animation|An animated ogre and a talking donkey rescue a princess in a fairy tale.
a5|Frozen|Animation|Animated musical for children: a princess with ice powers and a snowman.
a6|Cars|Animation|Animated talking race cars learn about friendship, a family cartoon.
s1|Star Wars|Sci-Fi|Space opera: rebels fight a galactic empire with starships and lasers.
s2|Interstellar|Sci-Fi|Astronauts travel through a wormhole to find a new planet for humanity.
s3|2001: A Space Odyssey|Sci-Fi|A spaceship crew on a mission to Jupiter and a rogue AI computer.
s4|Star Trek|Sci-Fi|The starship Enterprise explores the galaxy and meets alien species.
s5|The Martian|Sci-Fi|An astronaut stranded on Mars grows potatoes to survive in space.
s6|Gravity|Sci-Fi|Astronauts adrift in orbit after debris destroys their space shuttle.
r1|Pride and Prejudice|Romance|A witty young woman and a proud gentleman fall in love in a ballroom.
r2|Notting Hill|Romance|A London bookseller falls in love with a famous movie star.
r3|The Notebook|Romance|A summer love story between a poor boy and a rich girl, love letters.
r4|Before Sunrise|Romance|Two strangers on a train spend one romantic night walking through Vienna.
r5|When Harry Met Sally|Romance|Old friends wonder if men and women can be in love; romantic comedy.
r6|Casablanca|Romance|Old lovers meet again in wartime Morocco; a bittersweet romance.
"""
"""id|title|genre|blurb, one item a line."""


def make_item(item_id: str, title: str, genre: str, blurb: str, year: int = 2000) -> Item:
    """An Item shaped like the MovieLens ones: text, bare title, year, genre flags."""
    metadata: dict[str, str | int | float | bool] = {"title": title, "year": year, "genres": genre}
    metadata.update({f"genre_{g}": g == genre for g in GENRES})
    return Item(
        id=item_id,
        title=f"{title} ({year})",
        text=f"{title} ({year}). Genres: {genre}. {blurb}",
        metadata=metadata,
    )


@pytest.fixture(scope="session")
def mini_items() -> list[Item]:
    """24 items in four clear clusters (horror, animation, sci-fi, romance)."""
    rows = [line.split("|") for line in _MINI.strip().splitlines()]
    return [make_item(i, t, g, b, 1990 + n) for n, (i, t, g, b) in enumerate(rows)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server from this venv, on a free port; yields its URL."""
    exe = Path(sys.executable).parent / "chroma"
    if not exe.is_file():
        pytest.fail(f"{exe} not found: chromadb should install the `chroma` command")
    folder = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder.parent / f"{folder.name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer within 60 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ml100k_home(tmp_path_factory: pytest.TempPathFactory, artifacts: ArtifactStore,
                embedder: Embedder) -> Path:
    """A recagent home holding MovieLens 100K; ingestion is idempotent, so every module
    of this test run that asks gets the same collection, embedded once."""
    if not (ML100K / "u.item").is_file():
        pytest.skip(f"{ML100K} not present")
    home = tmp_path_factory.getbasetemp() / "chat-ml100k-home"
    home.mkdir(exist_ok=True)
    if not (home / "artifacts").exists():
        (home / "artifacts").symlink_to(artifacts.cache_dir.resolve())
    CatalogStore.open(embedder, path=home / "chroma").ingest(load_movielens(ML100K))
    return home
