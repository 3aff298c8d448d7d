"""`recagent eval` for the item cold start protocol: the catalog passes of every model and
the rows (eval.item_features), plus any LLM ranker variants, the usual report, and the
rule's verdict appended to it (eval.item_coldstart_judge).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from eval.config import EvalConfig
from eval.datasets import Dataset
from eval.harness import EvalResult, Harness
from eval.item_coldstart import cold_items
from eval.item_coldstart_judge import judge, judged_setting, markdown
from eval.item_features import features_record, item_rankers
from eval.report import write_report
from eval.summary import summarize
from recagent.llm.client import LLMClient
from recagent.wiring import Settings, open_store


def evaluate_item_coldstart(
    config: EvalConfig, dataset: Dataset, settings: Settings, out: Path, config_text: str, *,
    open_client: Callable[[], AbstractContextManager[LLMClient]], progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    """The whole run: passes, rows, variants (through `open_client`), report, verdict."""
    spec = config.item_coldstart
    assert spec is not None
    store = open_store(settings, collection=f"eval-{dataset.name}")
    store.ingest(list(dataset.items.values()), progress=progress)
    rankers, passes = item_rankers(spec, dataset, settings, store, run=config.name,
                                   seed=config.seed, progress=progress)

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
        **features_record(harness, result, rankers, passes, judged_setting(spec)),
    }
    verdict = judge(result, spec)
    summary["item_coldstart"] = {"verdict": verdict, **extra}
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=float) + "\n",
                                      encoding="utf-8")
    with (out / "metrics.md").open("a", encoding="utf-8") as f:
        f.write(markdown(verdict, extra))
    return summary, out
