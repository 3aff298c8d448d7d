"""The evaluation config: one TOML file says data, protocol, users, baselines, model, variants.

Unknown keys are errors (a typo must not silently fall back to a default), and a new
prompt variant is a new `[[variants]]` table, never new code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eval.item_coldstart_config import ItemColdStartConfig, ItemVectorsConfig
from eval.protocols import LLMRANK_POSITIVE, PROTOCOL_VERSION
from eval.toml_config import load_toml_model
from recagent.rank.factory import RankerSpec
from recagent.wiring import HybridSpec, LLMSpec, RetrieverSpec

BaselineName = Literal["random", "popularity", "itemknn", "embedding", "bpr", "nextcount",
                       "recency_knn", "sasrec", "gru4rec"]


def _full_only() -> list[int | Literal["full"]]:
    return ["full"]


def _all_baselines() -> list[BaselineName]:
    return ["random", "popularity", "itemknn", "embedding", "bpr"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    kind: Literal["ml-100k", "ml-1m", "interactions"]
    path: Path = Field(description="MovieLens folder, or the catalog file for 'interactions'")
    ratings: Path | None = Field(default=None, description="ratings file (ml-1m, interactions)")
    partial: bool = Field(False, description="the ratings cover only some users (ml-1m)")
    positive_threshold: float = 4.0
    history: Literal["positive", "all"] = "positive"

    @model_validator(mode="after")
    def _ratings_needed(self) -> DatasetConfig:
        if self.kind == "interactions" and self.ratings is None:
            raise ValueError("dataset kind 'interactions' needs `ratings` (a CSV file)")
        return self


class ProtocolConfig(_Strict):
    kind: Literal["llmrank", "pipeline", "rating", "item_coldstart"]
    """item_coldstart: eval/item_coldstart.py, with an [item_coldstart] table."""
    n_negatives: Annotated[int, Field(ge=1)] = 19
    n_candidates: Annotated[int, Field(ge=1, le=100)] = 20
    """Pipeline: candidates retrieved per user."""
    retriever: Literal["semantic", "hybrid", "product"] = "semantic"
    """Pipeline: where candidates come from; 'hybrid' fuses the sources of [protocol.hybrid];
    'product' is the product's own fitted retrieval (needs a [product] table)."""
    hybrid: HybridSpec | None = None
    """Pipeline with retriever = "hybrid" only (default: all sources, weight 1)."""
    llm_only_when_retrieved: bool = False
    """Pipeline: call the LLM only for users whose target is among their candidates. For
    the others no ranking can score, so every metric is the same; only validity and cost
    are then counted over fewer users (the report says how many were not called)."""
    k: Annotated[int, Field(ge=1)] = 10
    """How many items each ranker returns (metrics are cut at 1, 5 and 10)."""
    history_lengths: list[int | Literal["full"]] = Field(default_factory=_full_only)
    """The most recent k interactions; "full" keeps the history up to max_history."""
    max_history: Annotated[int, Field(ge=1)] = 50
    n_examples: Annotated[int, Field(ge=1)] = 10
    """Rating protocol: rated examples shown per user."""
    n_held_out: Annotated[int, Field(ge=1)] = 5
    """Rating protocol: ratings to predict per user."""
    cut: Literal["leave_one_out", "strict", "global"] = "leave_one_out"
    """How history and training are cut from the target: "leave_one_out" (each user's last
    positive interaction; interactions logged in its second but ordered before it are
    history), "strict" (the same targets; only what came strictly before the target's
    second is history or training), "global" (one date for everyone: eval.temporal)."""
    split_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.9
    """cut = "global": the share of interactions before the split date."""
    conventions: Literal["ours", "llmrank"] = "ours"
    """LLMRank protocol: "llmrank" reproduces LLMRank's own target, history and negatives
    (every interaction positive; negatives may be seen items): docs/evaluation.md."""

    @property
    def settings(self) -> list[int]:
        """History lengths as integers; 0 means the full history."""
        return [0 if h == "full" else int(h) for h in self.history_lengths]

    @model_validator(mode="after")
    def _check(self) -> ProtocolConfig:
        if any(h != "full" and int(h) < 1 for h in self.history_lengths):
            raise ValueError("history_lengths must be positive integers or 'full'")
        if len(set(self.settings)) != len(self.settings):
            raise ValueError("history_lengths repeat a value")
        if self.kind in ("llmrank", "item_coldstart") and self.k > self.n_negatives + 1:
            raise ValueError(f"k={self.k} exceeds the {self.n_negatives + 1} candidates")
        if self.kind == "pipeline" and self.k > self.n_candidates:
            raise ValueError(f"k={self.k} exceeds n_candidates={self.n_candidates}")
        if self.llm_only_when_retrieved and self.kind != "pipeline":
            raise ValueError("llm_only_when_retrieved applies to the pipeline protocol only")
        if self.conventions != "ours" and self.kind != "llmrank":
            raise ValueError("conventions applies to the llmrank protocol only")
        if self.retriever != "semantic" and self.kind != "pipeline":
            raise ValueError("retriever applies to the pipeline protocol only")
        if self.hybrid is not None and self.retriever != "hybrid":
            raise ValueError('[protocol.hybrid] needs retriever = "hybrid"')
        return self

    @property
    def hybrid_or_default(self) -> HybridSpec:
        return self.hybrid or HybridSpec()

    @property
    def retriever_spec(self) -> RetrieverSpec:
        """The pipeline's retriever as the product's wiring builds it ('product': the fit's,
        made by the harness)."""
        if self.retriever == "product":
            raise ValueError("the product's retriever comes from its fit (eval.product)")
        return RetrieverSpec(kind=self.retriever, hybrid=self.hybrid_or_default)


class UsersConfig(_Strict):
    llm_sample: Annotated[int, Field(ge=1)] | None = 200
    """LLM rows run on this fixed seeded sample of users; None (TOML: "all") = all users."""
    baseline_sample: Annotated[int, Field(ge=1)] | None = None
    """Baselines run on all users unless this is set."""

    @field_validator("llm_sample", "baseline_sample", mode="before")
    @classmethod
    def _all(cls, value: object) -> object:
        """TOML has no null: "all" means every user."""
        return None if value == "all" else value


class BPRConfig(_Strict):
    factors: Annotated[int, Field(ge=1)] = 64
    iterations: Annotated[int, Field(ge=1)] = 100
    learning_rate: Annotated[float, Field(gt=0)] = 0.05
    regularization: Annotated[float, Field(ge=0)] = 0.01


class SequentialConfig(_Strict):
    """SASRec and GRU4Rec training (eval.sequential_models): RecBole's model defaults."""

    max_epochs: Annotated[int, Field(ge=1)] = 30
    patience: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(ge=1)] = 128
    learning_rate: Annotated[float, Field(gt=0)] = 0.002
    max_length: Annotated[int, Field(ge=2)] = 50


class BaselinesConfig(_Strict):
    include: list[BaselineName] = Field(default_factory=_all_baselines)
    bpr: BPRConfig = BPRConfig()
    sequential: SequentialConfig = SequentialConfig()
    inputs: Literal["positive", "all"] = "positive"
    """What the baselines learn from and see: "positive" (the literature's convention:
    positive training interactions, the case's positive history up to max_history) or
    "all" (what the product sees: every training interaction and every interaction of
    the user's before the cut, whatever its rating, at any length)."""
    retrieval_rows: bool = False
    """Pipeline protocol: each baseline that can score the whole catalog also retrieves its
    own top n_candidates (a row named BASELINE_retrieval), beside re-ordering the
    product's candidates."""


class LLMConfig(LLMSpec):
    """The model that answers the variants (recagent.wiring.LLMSpec), and how hard to push it."""

    concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    cache: Path | None = Field(default=None, description="SQLite response cache; default in --out")


LATER_FIELDS = ("calibrate", "judge_against")
"""Variant fields added after reports were committed (see VariantConfig.identity)."""


class VariantConfig(RankerSpec):
    """A prompt variant: a ranker (recagent.wiring.RankerSpec, the same spec the product runs)
    under a name, optionally fused with baselines' scores."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")]
    fusion: list[str] = Field(default_factory=list)
    """Baselines (or item-vector rows, with an [item_vectors] table) whose scores are fused
    with this variant's LLM scores (eval.fusion)."""
    fit_users: Annotated[int, Field(ge=1)] = 20
    """Fusion: validation users outside the LLM sample the weights are fitted on."""
    fit_folds: Annotated[int, Field(ge=2)] | None = None
    """Fusion, cross-fitted: split the LLM sample into this many seeded folds and score
    each with weights fitted on `fit_users` users outside that fold (None: one fit on users
    outside the whole sample). Lets every user be evaluated (llm_sample = all)."""
    fuse_llm: bool = True
    """Fusion: False holds the LLM out (weight 0, never called): the same fit over the other
    sources alone, a row that shows what the LLM adds to the fusion."""
    judge_against: str | None = None
    """Another run (variant or baseline) this one is judged against: the report adds a
    paired t-test of this run minus that one, per history setting (e.g. a fusion with
    LLM features against the same fusion without them)."""

    def identity(self) -> dict[str, object]:
        """The variant as its stored results are keyed. Fields added later are left out
        while at their default, so results stored before they existed stay reusable."""
        later = {n for n in LATER_FIELDS
                 if getattr(self, n) == VariantConfig.model_fields[n].default}
        return self.model_dump(mode="json", exclude=later)

    @model_validator(mode="after")
    def _fusion_options(self) -> VariantConfig:
        if not self.fuse_llm and not self.fusion:
            raise ValueError("fuse_llm = false needs fusion sources to fuse")
        if self.fit_folds and not self.fusion:
            raise ValueError("fit_folds needs fusion sources to fit weights for")
        return self


class ProductConfig(_Strict):
    """The product as it ships, as a row of the report (eval.product): `recagent fit` run on
    this run's training split, then the fitted retrieval and reranking through the
    product's `Recommender`. Fitted without the LLM: small local models' scores added
    nothing measurable to the fusion (the LLM's share is judged by its own configs)."""

    fit_users: Annotated[int, Field(ge=1)] | None = 200
    """Validation users held out of the training split for the fit (recagent.fit); "all":
    as many as the data allows (the fit without the LLM costs no model calls)."""

    @field_validator("fit_users", mode="before")
    @classmethod
    def _all(cls, value: object) -> object:
        return None if value == "all" else value
    depth: Annotated[int, Field(ge=20, le=5000)] = 300
    """LLMRank protocol: items asked of each retrieval source to order the given candidates
    (a candidate no source ranks this deep comes after the others, in the given order)."""


class EvalConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+$")]
    seed: int = 0
    dataset: DatasetConfig
    protocol: ProtocolConfig
    users: UsersConfig = UsersConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    llm: LLMConfig = LLMConfig()
    variants: list[VariantConfig] = Field(default_factory=list)
    product: ProductConfig | None = None
    """A `product` row: the shipped configuration, fitted on the training split."""
    degraded_scores_zero: bool = True
    """A degraded answer (the LLM failed; retrieval order shown) scores 0 like a failure."""
    item_coldstart: ItemColdStartConfig | None = None
    """Protocol kind "item_coldstart" only: cold items, item-vector models, the rule."""
    item_vectors: ItemVectorsConfig | None = None
    """Protocols llmrank and pipeline: item-vector rows (eval.item_features), run like
    baselines and fusable by name."""

    @model_validator(mode="after")
    def _item_coldstart(self) -> EvalConfig:
        cold = self.protocol.kind == "item_coldstart"
        if cold != (self.item_coldstart is not None):
            raise ValueError('protocol kind "item_coldstart" and an [item_coldstart] table go '
                             'together')
        if cold and self.product is not None:
            raise ValueError("the item_coldstart protocol has no [product] row")
        if self.item_vectors is not None and self.protocol.kind not in ("llmrank", "pipeline"):
            raise ValueError("[item_vectors] goes with protocol kind llmrank or pipeline (the "
                             "item_coldstart protocol lists its models in [item_coldstart])")
        return self

    @property
    def item_features(self) -> ItemVectorsConfig | None:
        """The item-vector models this run computes, whichever table names them."""
        return self.item_coldstart or self.item_vectors

    @property
    def fusable(self) -> list[str]:
        """The rows a variant may fuse: the baselines and the item-vector rows."""
        spec = self.item_features
        return [*self.baselines.include, *(spec.names if spec else [])]

    @model_validator(mode="after")
    def _unique_names(self) -> EvalConfig:
        names = [v.name for v in self.variants] + list(self.baselines.include)
        names += ["product"] if self.product else []
        if (self.protocol.retriever == "product") != (
                self.product is not None and self.protocol.kind == "pipeline"):
            raise ValueError('the pipeline protocol with a [product] table needs retriever = '
                             '"product" (the baselines then rank the product\'s candidates), '
                             'and retriever = "product" needs a [product] table')
        fixed = self.dataset.model_fields_set & {"positive_threshold", "history"}
        if self.protocol.conventions == "llmrank" and fixed:
            raise ValueError(f"conventions = 'llmrank' counts every interaction as positive: "
                             f"remove {sorted(fixed)} from [dataset]")
        if len(names) != len(set(names)):
            raise ValueError(f"variant and baseline names must be unique, got {names}")
        runs = set(names) | set(self.fusable)
        for v in self.variants:
            missing = set(v.fusion) - set(self.fusable)
            if missing:
                raise ValueError(f"variant {v.name!r} fuses {sorted(missing)}, which are not "
                                 "in baselines.include (nor item-vector rows)")
            if v.judge_against is not None and v.judge_against not in runs - {v.name}:
                raise ValueError(f"variant {v.name!r} is judged against "
                                 f"{v.judge_against!r}, which is not another run of this config")
        return self

    @property
    def positive_threshold(self) -> float:
        """What is positive for the targets, the history and the baselines' training data."""
        if self.protocol.conventions == "llmrank":
            return LLMRANK_POSITIVE
        return self.dataset.positive_threshold

    def fingerprint(self, *parts: object) -> str:
        """What a stored per-user result depends on; a changed config never reuses stale ones."""
        protocol = self.protocol.model_dump(mode="json")
        if protocol["retriever"] == "semantic":  # fingerprints from before these keys stay
            del protocol["retriever"], protocol["hybrid"]
        else:
            protocol["hybrid"] = self.protocol.hybrid_or_default.model_dump(mode="json")
        if protocol["cut"] == "leave_one_out":
            del protocol["cut"], protocol["split_quantile"]
        # the protocol's rules themselves (eval.protocols): a rule change never reuses results
        rules = {"protocol_version": PROTOCOL_VERSION}
        blob = json.dumps([self.seed, self.dataset.model_dump(mode="json"), protocol, rules,
                           *parts], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def load_config(path: Path) -> EvalConfig:
    """Read and validate a TOML config; every problem is a ConfigError naming the file."""
    return load_toml_model(path, EvalConfig)
