"""The real ONNX MiniLM embedder, and the OpenAI-compatible one against a fake HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from recagent.artifacts import ArtifactStore
from recagent.errors import ConfigError, ModelArtifactError, TransportError
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


# ---- OpenAI-compatible /v1/embeddings ------------------------------------------------------


def _client(handler: httpx.MockTransport) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://embed.test/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx.Client(transport=handler),
    )


def test_openai_embedder_batches_reorders_and_normalises() -> None:
    requests: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        texts = body["input"]
        # unnormalised vectors, listed in reverse order: only `index` tells which is which
        data = [
            {"object": "embedding", "index": n, "embedding": [float(len(t)), 0.0, 3.0]}
            for n, t in enumerate(texts)
        ][::-1]
        return httpx.Response(200, json={
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        })  # fmt: skip

    embedder = OpenAIEmbedder(_client(httpx.MockTransport(handler)), "minilm", batch_size=2)
    out = embedder.embed(["a", "bbbb", "ccc", "dddd"])
    assert [r["input"] for r in requests] == [["a", "bbbb"], ["ccc", "dddd"]]
    assert all(r["model"] == "minilm" for r in requests)
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_allclose(out[1], [0.8, 0.0, 0.6], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert embedder.name == "openai:minilm" and isinstance(embedder, Embedder)


@pytest.mark.parametrize(("status", "error"), [(503, TransportError), (404, ConfigError)])
def test_openai_embedder_errors(status: int, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {"message": "nope"}})

    embedder = OpenAIEmbedder(_client(httpx.MockTransport(handler)), "minilm")
    with pytest.raises(error, match="embedding"):
        embedder.embed(["a"])
