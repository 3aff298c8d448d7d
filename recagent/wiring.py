"""Wire the parts together from one settings object.

The CLI (and anyone embedding recagent) fills `Settings` explicitly; nothing here
reads the environment. `open_recommender` owns the lifetimes: the embedded LLM
server is started only when no server URL is given, and stopped on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import DEFAULT_PRESET, resolve_model
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from retrieval.embeddings import Embedder, OnnxEmbedder
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore


class Settings(BaseModel):
    """Everything that decides which parts run; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(description="cache folder: model files and the embedded Chroma")
    chroma_url: str | None = Field(None, description="a `chroma run` server instead of embedded")
    collection: str = "catalog"
    llm_base_url: str | None = Field(None, description="OpenAI-compatible server; else embedded")
    llm_model: str | None = None
    llm_api_key: str = "not-needed"
    preset: str = Field(DEFAULT_PRESET, description="embedded model preset or a .gguf path")
    llm_threads: int | None = None
    template: str = "rank_zero_shot"
    n_candidates: int = Field(20, ge=1, le=100)
    ranker: Literal["llm", "none"] = "llm"

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.home / "artifacts")

    def vllm_preparer(self, python: Path) -> VLLMModelPreparer:
        """Presets converted for vLLM with `python`'s transformers, kept in HOME/vllm-models."""
        return VLLMModelPreparer(self.artifacts, self.home / "vllm-models", python=python)


def open_embedder(settings: Settings) -> Embedder:
    store = settings.artifacts
    return OnnxEmbedder(store.path("minilm-onnx"), store.path("minilm-tokenizer"))


def open_store(settings: Settings) -> CatalogStore:
    embedder = open_embedder(settings)
    if settings.chroma_url:
        return CatalogStore.open(embedder, url=settings.chroma_url, name=settings.collection)
    return CatalogStore.open(embedder, path=settings.home / "chroma", name=settings.collection)


@contextmanager
def open_llm(settings: Settings) -> Iterator[OpenAIClient]:
    """A client for the configured server, or for an embedded one started for the duration."""
    if settings.llm_base_url:
        if not settings.llm_model:
            raise ConfigError("a model name is required with an LLM server URL (--llm-model)")
        yield OpenAIClient(base_url=settings.llm_base_url, model=settings.llm_model,
                           api_key=settings.llm_api_key)
        return
    name, path = resolve_model(settings.preset, settings.artifacts)
    with LocalLLMServer(path, model_name=name, n_threads=settings.llm_threads) as server:
        yield OpenAIClient(base_url=server.base_url, model=server.model)


@contextmanager
def open_recommender(settings: Settings) -> Iterator[Recommender]:
    store = open_store(settings)
    retriever = SemanticRetriever(store)
    if settings.ranker == "none":
        yield Recommender(store, retriever, None, n_candidates=settings.n_candidates)
        return
    with open_llm(settings) as client:
        ranker = ListwiseRanker(client, PromptLibrary(), template=settings.template)
        yield Recommender(store, retriever, ranker, n_candidates=settings.n_candidates)
