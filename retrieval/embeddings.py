"""Offline text embedders: vectors come from local files or a server we name, never a hub.

Every embedder returns float32 rows of unit length, so a dot product is a cosine
similarity and vectors from the store and from a query can be mixed freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import onnxruntime as ort
import openai
from openai.types import Embedding
from tokenizers import Tokenizer

from retrieval.errors import ConfigError, ModelArtifactError, TransportError


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows; `name` identifies the vector space."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows; an all-zero row stays zero instead of becoming NaN."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    normalised: np.ndarray = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX, run on CPU with onnxruntime.

    Mean pooling over the attention mask, then L2 normalisation: the same recipe
    sentence-transformers uses for all-MiniLM-L6-v2, so the vectors are comparable.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1 or max_length < 2:
            raise ConfigError("batch_size must be >= 1 and max_length >= 2")
        for p in (model_path, tokenizer_path):
            if not Path(p).is_file():
                raise ModelArtifactError(f"{p} is missing; run `recagent models fetch`")
        self.batch_size = batch_size
        self._name = Path(model_path).stem
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer pads every text to 128; pad per batch instead, and
        # truncate where the model was trained to stop.
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        dim = self._session.get_outputs()[0].shape[-1]
        self.dim: int | None = dim if isinstance(dim, int) else None

    @property
    def name(self) -> str:
        return f"onnx:{self._name}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Rows in input order; texts are batched by length so padding stays small."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = self._embed_batch([texts[i] for i in idx])
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
        assert out is not None
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return l2_normalise(pooled)


class OpenAIEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, llama.cpp server)."""

    def __init__(self, client: openai.OpenAI, model: str, *, batch_size: int = 128) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        self._client = client
        self._model = model
        self.batch_size = batch_size

    @property
    def name(self) -> str:
        return f"openai:{self._model}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Rows in input order; the server's `index` field decides order, not its listing."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            data = sorted(self._create(batch), key=lambda d: d.index)
            if len(data) != len(batch):
                raise TransportError(
                    f"embedding server returned {len(data)} vectors for {len(batch)} texts"
                )
            rows.extend(d.embedding for d in data)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return l2_normalise(np.array(rows, dtype=np.float32))

    def _create(self, batch: list[str]) -> list[Embedding]:
        try:
            response = self._client.embeddings.create(model=self._model, input=batch)
        except (
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        ) as e:
            raise TransportError(f"embedding request to {self._client.base_url} failed: {e}") from e
        except openai.APIStatusError as e:
            raise ConfigError(
                f"embedding server {self._client.base_url} refused model {self._model!r}: {e}"
            ) from e
        return list(response.data)
