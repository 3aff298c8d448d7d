"""What decides which parts run: the specs of retrieval, ranking and the LLM, and the
Settings that hold them (recagent.wiring builds the parts from these)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.presets import DEFAULT_PRESET, PRESETS, canonical_name
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.rank.spec import RankerSpec

if TYPE_CHECKING:
    pass

FitSource = Literal["semantic", "cooccurrence", "popularity", "sequential", "als",
                    "recency_knn", "nextcount"]
"""The sources `recagent fit` weighs: semantic (retrieval/semantic.py), item co-occurrence,
popularity and recency-weighted item-kNN (retrieval/collaborative.py), sequential (recent
items and what followed them, retrieval/sequential.py), nextcount (the plain count of what
came within 10 ratings after the last 10 items, the same module), als (ALS item vectors in their own
Chroma collection, retrieval/als.py)."""
ItemSideSource = Literal["llm_text", "llm_mapped", "text_mapped"]
"""Item-side sources, chosen by name only: llm_text (the semantic rule over an LLM's item
vectors, retrieval/item_vectors.py), llm_mapped and text_mapped (those vectors, or the
catalog's MiniLM ones, mapped into the ALS space by a ridge map fitted on warm items,
retrieval/item_map.py). The llm_ ones need the LLM's catalog pass
(recagent.wiring.llm_item_vectors)."""
LLM_VECTOR_SOURCES: tuple[ItemSideSource, ...] = ("llm_text", "llm_mapped")
SourceName = Literal[FitSource, ItemSideSource]
"""Candidate sources a hybrid retriever can fuse."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _all_sources() -> dict[SourceName, float]:
    return {"semantic": 1.0, "cooccurrence": 1.0, "popularity": 1.0}


class HybridSpec(_Strict):
    """The hybrid retriever: which sources, how much each counts (weighted RRF)."""

    weights: dict[SourceName, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=_all_sources)
    """Sources to fuse and their weights; a source left out, or with weight 0, is not used
    (eval still reports a weight-0 source's recall beside the others, for comparison)."""
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


PRODUCT_RANKER = RankerSpec(method="logprob", explain=False)
"""The product's LLM score: every candidate scored in one forward pass (explanations are
written separately, from evidence, by recagent/explain)."""


class Settings(_Strict):
    """Everything that decides which parts run; unknown keys are an error."""

    home: Path = Field(description="cache folder: model files and the embedded Chroma")
    chroma_url: str | None = Field(None, description="a `chroma run` server instead of embedded")
    collection: str = "catalog"
    llm: LLMSpec = LLMSpec()
    llm_api_key: str = "not-needed"
    retriever: RetrieverSpec | None = None
    """None: the fitted retrieval (`recagent fit`) when the catalog has interactions, else
    the text (semantic) source alone."""
    ranker: RankerSpec | None = PRODUCT_RANKER
    """The LLM's score, fused with the candidates' own by the fitted weights; None: no LLM
    at all (fused collaborative order, template explanations)."""
    explain_with_llm: bool | None = None
    """The LLM words explanations from their evidence (checked, else a template); False:
    templates only, no LLM call; None: the preset's measured default
    (`Preset.words_explanations`: False for every shipped preset and for a server's model,
    whose sentences nobody has measured here)."""
    llm_explained: int = Field(1, ge=1, le=100)
    """How many of the top items the LLM words; the rest get templates. Decoding is most of
    a request's time on a CPU: with the default preset, 1 item keeps the p50 near 8 s, 3
    items took 15 s (benchmarks/bench_recommend.py)."""
    use_fit: bool = True
    """Use the weights `recagent fit` saved for this collection, if any."""
    n_candidates: int = Field(20, ge=1, le=100)
    seed: int = 0

    @property
    def preset(self) -> str:
        return self.llm.preset or DEFAULT_PRESET

    @property
    def words_explanations(self) -> bool:
        """Whether the LLM words explanations (see `explain_with_llm`)."""
        if self.explain_with_llm is not None:
            return self.explain_with_llm
        preset = PRESETS.get(canonical_name(self.preset))
        return bool(preset and preset.words_explanations and not self.llm.base_url
                    and self.llm.model is None)

    @property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.home / "artifacts")

    def vllm_preparer(self, python: Path) -> VLLMModelPreparer:
        """Presets converted for vLLM with `python`'s transformers, kept in HOME/vllm-models."""
        return VLLMModelPreparer(self.artifacts, self.home / "vllm-models", python=python)
