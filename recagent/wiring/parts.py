"""The catalog, the retriever and the LLM, built from Settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import openai

from recagent.errors import ConfigError
from recagent.llm.backends.llamacpp import LocalLLMServer, Pooling
from recagent.llm.backends.presets import DEFAULT_PRESET, PRESETS, find_preset, resolve_model
from recagent.llm.client import (
    DEADLINE_EMBEDDED_S,
    DEADLINE_REMOTE_S,
    LLMClient,
    OpenAIClient,
)
from recagent.wiring.settings import (
    LLMSpec,
    RetrieverSpec,
    Settings,
)
from retrieval import ingest_guard
from retrieval.als import ALSRetriever
from retrieval.collaborative import (
    CoOccurrenceRetriever,
    Interactions,
    ItemSimilarity,
    PopularityRetriever,
    RecencyKNNRetriever,
    as_rows,
    pairs_of,
)
from retrieval.embeddings import Embedder, OnnxEmbedder, OpenAIEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.interactions import DB_NAME, InteractionStore
from retrieval.item_map import MappedRetriever
from retrieval.item_types import CatalogPass
from retrieval.item_vectors import (
    ItemVectorRetriever,
    LazyEmbedder,
    embed_catalog,
    vector_collection,
)
from retrieval.semantic import SemanticRetriever
from retrieval.sequential import SequentialRetriever
from retrieval.stamp import VersionStamp
from retrieval.store import CatalogStore
from retrieval.types import Item, Retriever

if TYPE_CHECKING:
    from recagent.llm.backends.vllm_server import VLLMServer

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


def open_store(
    settings: Settings, collection: str | None = None, *, embedder: Embedder | None = None,
    memory: bool = True,
) -> CatalogStore:
    """The catalog collection (default `settings.collection`), embedded or on a server;
    `embedder` (default MiniLM) for another embedder's collection (item vectors);
    `memory` False: reads go to Chroma every time (a writer or a one-off reader)."""
    embedder, name = embedder or open_embedder(settings), collection or settings.collection
    if settings.chroma_url:
        return CatalogStore.open(embedder, url=settings.chroma_url, name=name,
                                 lock_dir=settings.home / "locks", memory=memory)
    return CatalogStore.open(embedder, path=settings.home / "chroma", name=name,
                             memory=memory)


def catalog_stamp(settings: Settings) -> VersionStamp:
    """The catalog collection's version stamp, without opening it (see open_store)."""
    if settings.chroma_url:
        lock = ingest_guard.lock_file(settings.collection, url=settings.chroma_url,
                                      lock_dir=settings.home / "locks")
    else:
        lock = ingest_guard.lock_file(settings.collection, path=settings.home / "chroma")
    return VersionStamp(ingest_guard.stamp_file(lock))


def open_interactions(settings: Settings) -> InteractionStore:
    """The interactions beside the catalog: HOME/interactions.sqlite, one file for every
    collection (rows are scoped by `settings.collection` at each call)."""
    return InteractionStore(usable_home(settings) / DB_NAME)


def build_retriever(
    spec: RetrieverSpec, store: CatalogStore, interactions: Interactions = (), *,
    llm_vectors: CatalogStore | None = None,
) -> Retriever:
    """The semantic retriever, or the hybrid one whose collaborative sources learn from
    `interactions` (in eval the training interactions only): (user, item) pairs, or
    (user, item, rating, timestamp) rows, which the sequential source orders by time
    (pairs: each user's in the given order). `llm_vectors`: the LLM's item vectors
    (`llm_item_vectors`), which the llm_text and llm_mapped sources need."""
    semantic = SemanticRetriever(store)
    if spec.kind == "semantic":
        return semantic
    rows = as_rows(interactions)
    weights = {str(name): w for name, w in spec.hybrid.weights.items()}
    if not rows and set(weights) - {"semantic"}:
        raise ConfigError("the hybrid retriever's collaborative sources need interactions, "
                          "and none were given; use retriever kind 'semantic'")
    als = cache(lambda: ALSRetriever(store, rows))  # one ALS space for every source using it
    knn = cache(lambda: ItemSimilarity(pairs_of(rows)))  # one item-kNN cosine, likewise

    def llm(source: str) -> CatalogStore:
        if llm_vectors is None:
            raise ConfigError(f"the {source} source needs the LLM's item vectors (one pass "
                              "over the catalog, recagent.wiring.llm_item_vectors); none were "
                              "given")
        return llm_vectors

    factories: dict[str, Callable[[], Retriever]] = {  # in this order: ties favour semantic
        "semantic": lambda: semantic,
        "llm_text": lambda: ItemVectorRetriever(llm("llm_text"), source="llm_text"),
        "sequential": lambda: SequentialRetriever(store, rows, similarity=knn()),
        "nextcount": lambda: SequentialRetriever(
            store, rows, window=10, step_decay=1.0, decay=1.0, knn_weight=0.0, max_history=10,
            normalise=False, source="nextcount", similarity=knn()),
        "als": als,
        "llm_mapped": lambda: MappedRetriever(llm("llm_mapped"), als(), source="llm_mapped"),
        "text_mapped": lambda: MappedRetriever(store, als(), source="text_mapped"),
        "recency_knn": lambda: RecencyKNNRetriever(store, rows, similarity=knn()),
        "cooccurrence": lambda: CoOccurrenceRetriever(store, rows, similarity=knn()),
        "popularity": lambda: PopularityRetriever(store, rows),
    }
    used = {name: w for name, w in weights.items() if w > 0}  # weight 0: not even trained
    sources = {name: make() for name, make in factories.items() if name in used}
    return HybridRetriever(sources, used, k_rrf=spec.hybrid.k_rrf, depth=spec.hybrid.depth)


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


def embedding_server(
    settings: Settings, spec: LLMSpec | None = None, *, pooling: Pooling = "mean"
) -> LocalLLMServer:
    """The embedded llama.cpp server in embedding mode for the spec's preset or .gguf file
    (not yet started). One request at a time, one thread unless the spec says otherwise:
    llama.cpp's spinning threads crawl on a shared CPU (measured: 2 threads took 10x
    longer than 1 with other work on the two cores)."""
    spec = spec or settings.llm
    usable_home(settings)
    name, path = resolve_model(spec.preset or DEFAULT_PRESET, settings.artifacts)
    return LocalLLMServer(path, model_name=name, n_threads=spec.threads or 1, n_parallel=1,
                          n_ctx=spec.context or 512, pooling=pooling)


def llm_embedder_name(model: str, pooling: Pooling) -> str:
    """The name the LLM's item vectors are cached under: the model and its pooling."""
    return f"llamacpp:{model}:{pooling}"


def llm_item_vectors(
    settings: Settings, catalog: CatalogStore, items: Sequence[Item], *,
    spec: LLMSpec | None = None, pooling: Pooling = "mean", progress: bool = False,
) -> tuple[CatalogStore, CatalogPass]:
    """The LLM's item vectors in their own collection beside `catalog`, after one pass over
    `items` (cached by model, pooling and item text: the model starts only if an item
    needs embedding, and stops before this returns). The store is what the llm_text and
    llm_mapped sources read; the pass says what it cost."""
    server = embedding_server(settings, spec, pooling=pooling)

    def start() -> Embedder:
        server.start()
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0,
                               timeout=None)
        return OpenAIEmbedder(client, server.model, batch_size=32)

    embedder = LazyEmbedder(llm_embedder_name(server.model, pooling), start)
    try:
        store = open_store(settings, vector_collection(catalog.collection.name, embedder.name),
                           embedder=embedder)
        done = embed_catalog(store, items, batch_size=32, progress=progress)
    finally:
        server.stop()
    return store, done  # for reading: its embedder's server is stopped


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
    folder = settings.vllm_preparer(python).prepare(spec).folder if find_preset(spec) else None
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
    found = find_preset(preset)
    if found is None:
        raise ConfigError(f"[llm] preset = {preset!r}: engine = 'vllm' takes a preset "
                          f"({', '.join(PRESETS)}) or model = a Hugging Face folder")
    return settings.vllm_preparer(Path(sys.executable)).prepare(preset).folder, found.name
