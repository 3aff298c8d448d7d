"""`recagent eval` for the item cold start protocol: the catalog passes of every model, the
rows (eval.item_coldstart_rankers, plus any LLM ranker variants), the usual report, and
the rule's verdict appended to it (eval.item_coldstart_judge).

The passes are cached per model and item text (retrieval/item_vectors.py): a run over an
unchanged catalog embeds nothing, and still reports what the last full pass cost (kept
with the vectors' collection). MiniLM's pass is timed in memory each run (its vectors are
the catalog's own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from eval.config import EvalConfig
from eval.datasets import Dataset
from eval.harness import EvalResult, Harness
from eval.item_coldstart import cold_items
from eval.item_coldstart_judge import judge, judged_setting, markdown
from eval.item_coldstart_rankers import ColdStartRankers
from eval.report import write_report
from eval.summary import summarize
from recagent.llm.client import LLMClient
from recagent.wiring import LLMSpec, Settings, open_store
from recagent.wiring.parts import llm_item_vectors
from retrieval.item_types import CatalogPass
from retrieval.store import CatalogStore


def catalog_passes(
    config: EvalConfig, dataset: Dataset, settings: Settings, store: CatalogStore, *,
    progress: bool,
) -> tuple[dict[str, CatalogStore], dict[str, CatalogPass]]:
    """Each model's item vectors after its pass over the catalog, and what the pass did;
    plus MiniLM's, timed in memory (its vectors are the catalog's own)."""
    spec = config.item_coldstart
    assert spec is not None
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


def pass_record(passes: Mapping[str, CatalogPass]) -> dict[str, dict[str, Any]]:
    """This run's passes, each with the last full pass of its collection (its cost)."""
    return {name: {**p.model_dump(mode="json"), "full_pass_s": p.full_pass_seconds,
                   "full_pass_s_per_item": p.seconds_per_item} for name, p in passes.items()}


def scoring_ms(harness: Harness, result: EvalResult, setting: int) -> dict[str, float]:
    """Mean milliseconds one row takes to score one user's candidates (the per-user cost
    of a feature whose item-side part is cached), measured on the judged setting."""
    times: dict[str, float] = {}
    cases = result.cases[setting]
    for name, scorer in harness.scorers.items():
        began = time.perf_counter()
        for case in cases:
            scorer.score(case)
        times[name] = 1000 * (time.perf_counter() - began) / max(len(cases), 1)
    return times


def evaluate_item_coldstart(
    config: EvalConfig, dataset: Dataset, settings: Settings, out: Path, config_text: str, *,
    open_client: Callable[[], AbstractContextManager[LLMClient]], progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    """The whole run: passes, rows, variants (through `open_client`), report, verdict."""
    spec = config.item_coldstart
    assert spec is not None
    store = open_store(settings, collection=f"eval-{dataset.name}")
    store.ingest(list(dataset.items.values()), progress=progress)
    vectors, passes = catalog_passes(config, dataset, settings, store, progress=progress)
    rankers = ColdStartRankers(store, vectors, items=dataset.items, grid=spec.ridge,
                               seed=config.seed)

    def rows(result: EvalResult) -> Sequence[Any]:
        return rankers(result.loo.train, result.loo.positives)

    harness = Harness(config, dataset=dataset, store=store, out=out, progress=progress,
                      extra_scorers=rows)
    result = harness.prepare()
    harness.baselines(result)
    if config.variants:
        with open_client() as client:
            harness.variants(result, client)
    summary = summarize(result)
    write_report(result, summary, out, config_text)
    cold = cold_items(dataset, spec.cold_share)
    extra = {
        "cold": {"items": len(cold.items), "catalog": cold.catalog, "share": cold.share,
                 "cut": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cold.cut_ts)),
                 "negatives": config.protocol.n_negatives,
                 "train_dropped": sum(r.item in cold.items for r in dataset.ratings)},
        "passes": pass_record(passes),
        "maps": {n: m.model_dump(mode="json") for n, m in rankers.maps.items()},
        "scoring_ms": scoring_ms(harness, result, judged_setting(spec)),
    }
    verdict = judge(result, spec)
    summary["item_coldstart"] = {"verdict": verdict, **extra}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float) + "\n",
                                      encoding="utf-8")
    with (out / "metrics.md").open("a", encoding="utf-8") as f:
        f.write(markdown(verdict, extra))
    return summary, out
