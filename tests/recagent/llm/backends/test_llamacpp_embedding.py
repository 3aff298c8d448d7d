"""llama.cpp's embedding mode in the embedded server: the settings it passes, and for real
(SmolLM2-135M, integration) pooled, unit-length vectors over the OpenAI embeddings API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xllamacpp
from openai import OpenAI

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import POOLINGS, LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from retrieval.embeddings import OpenAIEmbedder


def test_an_unknown_pooling_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pooling must be one of mean, last, cls"):
        LocalLLMServer(tmp_path / "m.gguf", model_name="m", pooling="max")  # type: ignore[arg-type]


def test_embedding_mode_sets_pooling_and_a_batch_that_holds_one_input() -> None:
    pooled = LocalLLMServer(Path("m.gguf"), model_name="m", n_ctx=256, pooling="last")._params()
    assert pooled.embedding
    assert pooled.pooling_type == xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_LAST
    assert pooled.n_batch == pooled.n_ubatch == 256
    plain = LocalLLMServer(Path("m.gguf"), model_name="m", n_ctx=256)._params()
    assert not plain.embedding and plain.n_ubatch != 256
    assert set(POOLINGS) == {"mean", "last", "cls"}


@pytest.mark.integration
def test_the_server_embeds_texts_into_unit_rows(artifact_store: ArtifactStore) -> None:
    name, path = resolve_model("smollm2-135m", artifact_store)
    texts = ["Toy Story (1995). Genres: Animation, Children's, Comedy.",
             "Alien (1979). Genres: Horror, Sci-Fi.",
             "Toy Story (1995). Genres: Animation, Children's, Comedy."]
    with LocalLLMServer(path, model_name=name, n_ctx=256, n_parallel=1, n_threads=1,
                        pooling="mean") as server:
        client = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)
        rows = OpenAIEmbedder(client, server.model).embed(texts)
    assert rows.shape[0] == 3 and rows.shape[1] > 0 and np.isfinite(rows).all()
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert np.allclose(rows[0], rows[2], atol=1e-5) and not np.allclose(rows[0], rows[1])
