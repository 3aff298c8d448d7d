"""The real ONNX MiniLM embedder, and the OpenAI-compatible one against a fake HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from recagent.errors import ConfigError, ModelArtifactError, TransportError
from recagent.llm.backends.artifacts import ArtifactStore
from retrieval.embeddings import Embedder, OnnxEmbedder, OpenAIEmbedder, l2_normalise


def test_shape_dtype_and_unit_rows(embedder: OnnxEmbedder) -> None:
    vectors = embedder.embed(["Toy Story", "A haunted house", ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert isinstance(embedder, Embedder)
    assert embedder.name == "onnx:all-MiniLM-L6-v2.int8"


def test_similar_titles_are_closer(embedder: OnnxEmbedder) -> None:
    alien, aliens, toy = embedder.embed([
        "Alien (1979). Genres: Horror, Sci-Fi.",
        "Aliens (1986). Genres: Action, Sci-Fi, Thriller, War.",
        "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    ])
    assert alien @ aliens > alien @ toy + 0.1


def test_order_and_values_do_not_depend_on_batching(
    embedder: OnnxEmbedder, artifact_store: ArtifactStore
) -> None:
    texts = [f"movie number {n} " + "word " * (n * 7 % 23) for n in range(11)]
    together = embedder.embed(texts)
    one_by_one = np.stack([embedder.embed([t])[0] for t in texts])
    small = OnnxEmbedder(
        artifact_store.path("minilm-onnx"), artifact_store.path("minilm-tokenizer"), batch_size=3
    ).embed(texts)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(together, small, atol=1e-5)


def test_long_text_is_truncated_not_an_error(embedder: OnnxEmbedder) -> None:
    long = "space opera " * 2000
    [vector] = embedder.embed([long])
    assert np.isfinite(vector).all()


def test_one_string_is_refused(embedder: OnnxEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("Toy Story")


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="missing"):
        OnnxEmbedder(tmp_path / "model.onnx", tmp_path / "tokenizer.json")


def test_l2_normalise_keeps_zero_rows_finite() -> None:
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


# ---- OpenAI-compatible /v1/embeddings, against a tiny real HTTP server ----------------------

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@pytest.fixture
def embedding_server() -> Iterator[tuple[str, list[dict[str, Any]], list[Reply]]]:
    """Yields (base_url, received request bodies, [reply function]) of a local server."""
    received: list[dict[str, Any]] = []
    reply: list[Reply] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            status, payload = reply[0](body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", received, reply
    server.shutdown()
    server.server_close()


def _unnormalised_reversed(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    # vectors listed in reverse order: only `index` says which text each belongs to
    data = [
        {"object": "embedding", "index": n, "embedding": [float(len(t)), 0.0, 3.0]}
        for n, t in enumerate(body["input"])
    ][::-1]
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}


def test_openai_embedder_batches_reorders_and_normalises(
    embedding_server: tuple[str, list[dict[str, Any]], list[Reply]],
) -> None:
    url, received, reply = embedding_server
    reply.append(_unnormalised_reversed)
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    embedder = OpenAIEmbedder(client, "minilm", batch_size=2)
    out = embedder.embed(["a", "bbbb", "ccc", "dddd"])
    assert [r["input"] for r in received] == [["a", "bbbb"], ["ccc", "dddd"]]
    assert all(r["model"] == "minilm" for r in received)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_allclose(out[1], [0.8, 0.0, 0.6], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert embedder.name == "openai:minilm" and isinstance(embedder, Embedder)


@pytest.mark.parametrize(("status", "error"), [(503, TransportError), (404, ConfigError)])
def test_openai_embedder_errors(
    embedding_server: tuple[str, list[dict[str, Any]], list[Reply]],
    status: int,
    error: type[Exception],
) -> None:
    url, _, reply = embedding_server
    reply.append(lambda body: (status, {"error": {"message": "nope"}}))
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(error, match="embedding"):
        OpenAIEmbedder(client, "minilm").embed(["a"])


def test_openai_embedder_unreachable_server_is_a_transport_error() -> None:
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    with pytest.raises(TransportError):
        OpenAIEmbedder(client, "minilm").embed(["a"])
