"""Item-side features for a run: each model's item vectors after one cached pass over the
catalog, and the rows built on them (eval/item_coldstart_rankers.py), which the item cold
start protocol judges and the llmrank and pipeline protocols can fuse like baselines.

The passes are cached per model and item text (retrieval/item_vectors.py): a run over an
unchanged catalog embeds nothing, and still reports what the last full pass cost (kept
with the vectors' collection). MiniLM's pass is timed in memory each run (its vectors are
the catalog's own).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from eval.datasets import Dataset
from eval.harness import EvalResult, Harness
from eval.item_coldstart_config import ItemVectorsConfig
from eval.item_coldstart_rankers import ColdStartRankers
from recagent.wiring import LLMSpec, Settings
from recagent.wiring.parts import llm_item_vectors
from retrieval.item_types import CatalogPass
from retrieval.store import CatalogStore


def catalog_passes(
    spec: ItemVectorsConfig, dataset: Dataset, settings: Settings, store: CatalogStore, *,
    progress: bool,
) -> tuple[dict[str, CatalogStore], dict[str, CatalogPass]]:
    """Each model's item vectors after its pass over the catalog, and what the pass did;
    plus MiniLM's, timed in memory (its vectors are the catalog's own)."""
    items = list(dataset.items.values())
    vectors: dict[str, CatalogStore] = {}
    passes: dict[str, CatalogPass] = {}
    began = time.perf_counter()
    store.embedder.embed([i.text for i in items])
    seconds = time.perf_counter() - began
    passes[store.embedder.name] = CatalogPass(
        embedder=store.embedder.name, collection=store.collection.name, items=len(items),
        written=len(items), unchanged=0, seconds=seconds, full_pass_seconds=seconds,
        full_pass_items=len(items))
    for model in spec.models:
        llm = LLMSpec(preset=model, threads=spec.threads)
        vectors[model], passes[model] = llm_item_vectors(
            settings, store, items, spec=llm, pooling=spec.pooling, progress=progress)
    return vectors, passes


def item_rankers(
    spec: ItemVectorsConfig, dataset: Dataset, settings: Settings, store: CatalogStore, *,
    run: str, seed: int, progress: bool,
) -> tuple[ColdStartRankers, dict[str, CatalogPass]]:
    """The rows' builder (the harness's `extra_scorers`) after every catalog pass; `run`
    names the run's own ALS collection, so concurrent runs never share one."""
    vectors, passes = catalog_passes(spec, dataset, settings, store, progress=progress)
    rankers = ColdStartRankers(store, vectors, items=dataset.items, grid=spec.ridge, seed=seed,
                               als_collection=f"{store.collection.name}-als-{run}")
    return rankers, passes


def pass_record(passes: Mapping[str, CatalogPass]) -> dict[str, dict[str, Any]]:
    """This run's passes, each with the last full pass of its collection (its cost)."""
    return {name: {**p.model_dump(mode="json"), "full_pass_s": p.full_pass_seconds,
                   "full_pass_s_per_item": p.seconds_per_item} for name, p in passes.items()}


def scoring_ms(harness: Harness, result: EvalResult, setting: int) -> dict[str, float]:
    """Mean milliseconds one row takes to score one user's candidates (the per-user cost
    of a feature whose item-side part is cached), measured on `setting`."""
    times: dict[str, float] = {}
    cases = result.cases[setting]
    for name, scorer in harness.scorers.items():
        began = time.perf_counter()
        for case in cases:
            scorer.score(case)
        times[name] = 1000 * (time.perf_counter() - began) / max(len(cases), 1)
    return times


def features_record(harness: Harness, result: EvalResult, rankers: ColdStartRankers,
                    passes: Mapping[str, CatalogPass], setting: int) -> dict[str, Any]:
    """What the item-side features cost and how their maps fitted, for the report."""
    return {"passes": pass_record(passes),
            "maps": {n: m.model_dump(mode="json") for n, m in rankers.maps.items()},
            "scoring_ms": scoring_ms(harness, result, setting)}
