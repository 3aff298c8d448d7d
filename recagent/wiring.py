"""The one place that turns settings into running parts: store, retriever, LLM client, ranker.

The CLI, chat, the Python API, eval and the benchmarks all build through here, so any
configuration eval can measure (hybrid retrieval, NIR, logprob ranking, a bootstrap, the
vLLM engine) the product can run too, chosen by `Settings`. Nothing here reads the
environment (the CLI does); context managers own lifetimes: an embedded LLM server or a
vLLM engine is started only when no server URL is given, and stopped on exit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import DEFAULT_PRESET, PRESETS, resolve_model
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.llm.client import (
    DEADLINE_EMBEDDED_S,
    DEADLINE_REMOTE_S,
    LLMClient,
    OpenAIClient,
)
from recagent.llm.prompts import PromptLibrary
from recagent.rank.factory import RankerSpec, build_ranker, ranker_templates
from recagent.rank.listwise import Ranker
from recagent.recommender import Recommender
from retrieval.collaborative import CoOccurrenceRetriever, PopularityRetriever
from retrieval.embeddings import Embedder, OnnxEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from retrieval.types import Retriever

if TYPE_CHECKING:
    from recagent.llm.backends.vllm_server import VLLMServer

SourceName = Literal["semantic", "cooccurrence", "popularity"]
"""Candidate sources a hybrid retriever can fuse."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _all_sources() -> dict[SourceName, float]:
    return {"semantic": 1.0, "cooccurrence": 1.0, "popularity": 1.0}


class HybridSpec(_Strict):
    """The hybrid retriever: which sources, how much each counts (weighted RRF)."""

    weights: dict[SourceName, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=_all_sources)
    """Sources to fuse and their weights; a source left out is not used."""
    k_rrf: Annotated[int, Field(ge=0)] = 60
    depth: Annotated[int, Field(ge=1, le=1000)] = 100
    """Items asked of each source before fusing (and the longest list recall is
    measured on: keep it >= 50 for recall@50)."""

    @model_validator(mode="after")
    def _semantic_needed(self) -> HybridSpec:
        # Without the text source an item nobody interacted with could never be proposed.
        if self.weights.get("semantic", 0.0) <= 0:
            raise ValueError("weights.semantic must be > 0: it is the only source that can "
                             "propose items without interactions")
        return self


class RetrieverSpec(_Strict):
    kind: Literal["semantic", "hybrid"] = "semantic"
    hybrid: HybridSpec = HybridSpec()
    """Used when kind = "hybrid"; its collaborative sources learn from interactions."""


_ENGINE_ONLY = ("device", "max_model_len", "kv_cache_gib")
_LLAMACPP_ONLY = {"threads", "parallel", "context"}


class LLMSpec(_Strict):
    """Which model answers, and how it is reached."""

    engine: Literal["http", "vllm"] = "http"
    """http: an OpenAI-compatible server (base_url) or the embedded llama.cpp one; vllm: the
    model loaded in this process by vLLM, concurrent requests batched."""
    preset: str | None = Field(default=None, description="embedded model preset or .gguf path "
                               "(default: the default preset)")
    base_url: str | None = Field(default=None, description="an OpenAI-compatible server instead")
    model: str | None = Field(default=None, description="model name on that server; with "
                              "engine = 'vllm' a Hugging Face folder")
    threads: Annotated[int, Field(ge=1)] | None = None
    """The embedded llama.cpp server's CPU threads (default: its own choice)."""
    parallel: Annotated[int, Field(ge=1, le=64)] = 2
    """The embedded llama.cpp server's request slots (requests answered at once)."""
    context: Annotated[int, Field(ge=64)] | None = None
    """The embedded llama.cpp server's context per slot, in tokens (default 4096)."""
    deadline_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """Most seconds one LLM request may take, retries and a slow reply included; past it the
    answer is degraded ("deadline"). None: 600 s for the embedded model (a slow CPU), 180 s
    for a server (recagent.llm.client)."""
    device: Literal["cpu", "gpu"] = "cpu"
    """engine = 'vllm': cpu (float32, eager, threads bound to this process's cores) or gpu
    (vLLM's defaults plus prefix caching), as `serve-llm --backend vllm --device`."""
    max_model_len: Annotated[int, Field(ge=64)] = 2048
    """engine = 'vllm': the longest prompt plus answer, in tokens."""
    kv_cache_gib: Annotated[int, Field(ge=1)] = 1
    """engine = 'vllm' on cpu: the KV cache (VLLM_CPU_KVCACHE_SPACE)."""

    @model_validator(mode="after")
    def _engine_options(self) -> LLMSpec:
        # A setting the chosen path would ignore is an error.
        if self.engine == "http":
            ignored = sorted(set(_ENGINE_ONLY) & self.model_fields_set)
            if ignored:
                raise ValueError(f"{', '.join(ignored)} apply to engine = 'vllm' only")
        elif self.base_url is not None or _LLAMACPP_ONLY & self.model_fields_set:
            raise ValueError("engine = 'vllm' loads the model in this process: base_url and "
                             "threads, parallel, context (llama.cpp's) do not apply")
        elif self.model is not None and self.preset is not None:
            raise ValueError("engine = 'vllm' loads model (a folder) or preset, not both")
        return self


class Settings(_Strict):
    """Everything that decides which parts run; unknown keys are an error."""

    home: Path = Field(description="cache folder: model files and the embedded Chroma")
    chroma_url: str | None = Field(None, description="a `chroma run` server instead of embedded")
    collection: str = "catalog"
    llm: LLMSpec = LLMSpec()
    llm_api_key: str = "not-needed"
    retriever: RetrieverSpec = RetrieverSpec()
    ranker: RankerSpec | None = RankerSpec()
    """None: no LLM; the answer is the retrieval order, explained from its evidence."""
    n_candidates: int = Field(20, ge=1, le=100)
    seed: int = 0

    @property
    def preset(self) -> str:
        return self.llm.preset or DEFAULT_PRESET

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.home / "artifacts")

    def vllm_preparer(self, python: Path) -> VLLMModelPreparer:
        """Presets converted for vLLM with `python`'s transformers, kept in HOME/vllm-models."""
        return VLLMModelPreparer(self.artifacts, self.home / "vllm-models", python=python)


# ---- the catalog ---------------------------------------------------------------------


def usable_home(settings: Settings) -> Path:
    """The home folder, created if needed: a ConfigError (not a traceback) when it cannot be."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"the home folder {settings.home} cannot be created ({e.strerror}); "
                          "choose another with --home or RECAGENT_HOME") from None
    return settings.home


def open_embedder(settings: Settings) -> Embedder:
    usable_home(settings)
    store = settings.artifacts
    return OnnxEmbedder(store.path("minilm-onnx"), store.path("minilm-tokenizer"))


def open_store(settings: Settings, collection: str | None = None) -> CatalogStore:
    """The catalog collection (default `settings.collection`), embedded or on a server."""
    embedder, name = open_embedder(settings), collection or settings.collection
    if settings.chroma_url:
        return CatalogStore.open(embedder, url=settings.chroma_url, name=name,
                                 lock_dir=settings.home / "locks")
    return CatalogStore.open(embedder, path=settings.home / "chroma", name=name)


def build_retriever(
    spec: RetrieverSpec, store: CatalogStore, interactions: Sequence[tuple[str, str]] = ()
) -> Retriever:
    """The semantic retriever, or the hybrid one whose collaborative sources learn from
    `interactions` ((user, item) pairs: in eval the training interactions only)."""
    semantic = SemanticRetriever(store)
    if spec.kind == "semantic":
        return semantic
    pairs = list(interactions)
    weights = {str(name): w for name, w in spec.hybrid.weights.items()}
    if not pairs and set(weights) - {"semantic"}:
        raise ConfigError("the hybrid retriever's collaborative sources need interactions, "
                          "and none were given; use retriever kind 'semantic'")
    factories: dict[str, Callable[[], Retriever]] = {  # in this order: ties favour semantic
        "semantic": lambda: semantic,
        "cooccurrence": lambda: CoOccurrenceRetriever(store, pairs),
        "popularity": lambda: PopularityRetriever(store, pairs),
    }
    sources = {name: make() for name, make in factories.items() if name in weights}
    return HybridRetriever(sources, weights, k_rrf=spec.hybrid.k_rrf, depth=spec.hybrid.depth)


# ---- the LLM -------------------------------------------------------------------------


@contextmanager
def open_llm(settings: Settings, spec: LLMSpec | None = None) -> Iterator[LLMClient]:
    """A client for `spec` (default `settings.llm`) for the duration: over HTTP (a server, or
    the embedded llama.cpp one started here), or with engine = "vllm" a vLLM engine loaded
    in this process."""
    spec = spec or settings.llm
    if spec.engine == "vllm":
        with _open_vllm_engine(spec, settings) as engine:
            yield engine
        return
    if spec.base_url:
        if not spec.model:
            raise ConfigError("a model name is required with an LLM server URL (--llm-model)")
        yield OpenAIClient(base_url=spec.base_url, model=spec.model,
                           api_key=settings.llm_api_key,
                           deadline_s=spec.deadline_s or DEADLINE_REMOTE_S)
        return
    with embedded_server(settings, spec) as server:
        # No per-try timeout on the embedded model: a slow CPU answer is not retried, only
        # bounded by the deadline.
        yield OpenAIClient(base_url=server.base_url, model=server.model, timeout_s=None,
                           deadline_s=spec.deadline_s or DEADLINE_EMBEDDED_S)


def embedded_server(
    settings: Settings, spec: LLMSpec | None = None, *, port: int | None = None
) -> LocalLLMServer:
    """The embedded llama.cpp server for the spec's preset or .gguf file (not yet started:
    use it with `with`, or hand it to `serve_forever`)."""
    spec = spec or settings.llm
    usable_home(settings)
    name, path = resolve_model(spec.preset or DEFAULT_PRESET, settings.artifacts)
    return LocalLLMServer(path, model_name=name, n_threads=spec.threads,
                          n_parallel=spec.parallel, port=port, n_ctx=spec.context or 4096)


def vllm_server(
    settings: Settings, *, python: Path, served_name: str | None = None,
    device: Literal["cpu", "gpu"] = "cpu", port: int | None = None, max_model_len: int = 2048,
    cpu_cores: str | None = None,
) -> VLLMServer:
    """vLLM as a child process of `python` (its own environment) serving the spec's preset,
    converted once to a Hugging Face folder, or a folder or model name as it is; requests
    must name `served_name` (default: the preset's or folder's name)."""
    from recagent.llm.backends.vllm_server import VLLMServer, usable_cores

    spec = settings.preset
    folder = settings.vllm_preparer(python).prepare(spec).folder if spec in PRESETS else None
    cores = cpu_cores or (usable_cores() if device == "cpu" else None)
    return VLLMServer(python=python, model=str(folder) if folder else spec,
                      served_model_name=served_name or Path(spec).name, device=device,
                      port=port, max_model_len=max_model_len, cpu_cores=cores)


@contextmanager
def _open_vllm_engine(spec: LLMSpec, settings: Settings) -> Iterator[LLMClient]:
    from recagent.llm.backends import vllm_engine
    from recagent.llm.backends.vllm_server import usable_cores

    vllm_engine.check_vllm()  # before converting a preset that could not be loaded
    folder, name = engine_model(spec, settings)
    with vllm_engine.open_engine_client(
        str(folder), name=name, device=spec.device, max_model_len=spec.max_model_len,
        kv_cache_gib=spec.kv_cache_gib,
        cpu_cores=usable_cores() if spec.device == "cpu" else None,
    ) as engine:
        yield engine


def engine_model(spec: LLMSpec, settings: Settings) -> tuple[Path, str]:
    """`model` (a Hugging Face folder) or a preset, converted once into HOME/vllm-models as
    `recagent models prepare-vllm` does (with this environment's python, which has vLLM)."""
    if spec.model is not None:
        folder = Path(spec.model).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"[llm] model = {spec.model!r}: engine = 'vllm' loads a local "
                              "Hugging Face folder (with config.json) or a preset; nothing is "
                              "fetched from a hub")
        return folder, folder.name
    preset = spec.preset or settings.preset
    if preset not in PRESETS:
        raise ConfigError(f"[llm] preset = {preset!r}: engine = 'vllm' takes a preset "
                          f"({', '.join(PRESETS)}) or model = a Hugging Face folder")
    return settings.vllm_preparer(Path(sys.executable)).prepare(preset).folder, preset


# ---- the product ---------------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """What a running recagent is made of; `client` is None when no LLM runs."""

    store: CatalogStore
    client: LLMClient | None
    prompts: PromptLibrary
    recommender: Recommender


@contextmanager
def open_parts(
    settings: Settings, *, interactions: Sequence[tuple[str, str]] = ()
) -> Iterator[Parts]:
    """Store, retriever, LLM and ranker as `settings` say, for the duration."""
    store = open_store(settings)
    store.check_complete()  # a killed or running ingest: refused with what to do
    retriever = build_retriever(settings.retriever, store, interactions)
    prompts = PromptLibrary()
    if settings.ranker is not None:
        prompts.check(ranker_templates(settings.ranker))  # a typo fails before the LLM starts
    with ExitStack() as stack:
        client: LLMClient | None = None
        ranker: Ranker | None = None
        if settings.ranker is not None:
            client = stack.enter_context(open_llm(settings))
            ranker = build_ranker(settings.ranker, client, prompts, seed=settings.seed)
        recommender = Recommender(store, retriever, ranker, n_candidates=settings.n_candidates)
        yield Parts(store, client, prompts, recommender)


@contextmanager
def open_recommender(settings: Settings) -> Iterator[Recommender]:
    """The Python API's entry point: a Recommender as `settings` say, for the duration."""
    with open_parts(settings) as parts:
        yield parts.recommender
