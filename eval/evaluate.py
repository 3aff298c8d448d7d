"""One call from a config file to a written report: what `recagent eval` runs.

The parts come from the product's wiring (recagent.wiring), whose context managers own
their lifetimes: the data set's Chroma collection, and the LLM (an embedded server, or
with `engine = "vllm"` an in-process vLLM engine), started only if a variant needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

from eval.baselines import Scorer
from eval.config import LLMConfig, load_config
from eval.conversation_config import (
    CONVERSATION_KINDS,
    load_conversation_config,
    protocol_kind,
)
from eval.harness import EvalResult, Harness, load_dataset
from eval.item_coldstart_judge import features_markdown
from eval.item_coldstart_rankers import ColdStartRankers
from eval.item_features import features_record, item_rankers
from eval.rating import evaluate_rating, write_rating_report
from eval.report import write_report
from eval.summary import summarize
from recagent.llm.client import LLMClient
from recagent.wiring import LLMSpec, Settings, open_llm, open_store
from retrieval.item_types import CatalogPass

DEFAULT_REPORTS = Path("eval") / "reports"


def eval_llm_spec(llm: LLMConfig, settings: Settings) -> LLMSpec:
    """The [llm] table's model: what it sets wins over the command line's settings."""
    fields = llm.model_dump(include=set(LLMSpec.model_fields), exclude_unset=True)
    if llm.engine == "http":
        fields = settings.llm.model_dump(exclude_unset=True) | {
            k: v for k, v in fields.items() if v is not None}
    return LLMSpec.model_validate(fields)


def open_eval_llm(llm: LLMConfig, settings: Settings) -> AbstractContextManager[LLMClient]:
    return open_llm(settings, eval_llm_spec(llm, settings))


def evaluate_config(
    config_path: Path, *, out: Path | None, settings: Settings, progress: bool = True
) -> tuple[dict[str, Any], Path]:
    """Run the config, write its report folder (default eval/reports/NAME), return both."""
    if protocol_kind(config_path) in CONVERSATION_KINDS:
        return evaluate_dialogue_config(config_path, out=out, settings=settings,
                                        progress=progress)
    config = load_config(config_path)
    folder = out or DEFAULT_REPORTS / config.name
    config_text = config_path.read_text(encoding="utf-8")
    dataset = load_dataset(config.dataset)
    if config.protocol.kind == "rating":
        if config.variants:
            with open_eval_llm(config.llm, settings) as client:
                rating = evaluate_rating(config, dataset, client, out=folder, progress=progress)
        else:
            rating = evaluate_rating(config, dataset, None, out=folder, progress=progress)
        write_rating_report(rating, folder, config_text)
        return rating, folder
    if config.protocol.kind == "item_coldstart":
        from eval.item_coldstart_run import evaluate_item_coldstart

        return evaluate_item_coldstart(
            config, dataset, settings, folder, config_text, progress=progress,
            open_client=lambda: open_eval_llm(config.llm, settings))
    store = open_store(settings, collection=f"eval-{dataset.name}")
    rankers: ColdStartRankers | None = None
    passes: dict[str, CatalogPass] = {}
    extra_scorers = None
    if config.item_vectors is not None:
        store.ingest(list(dataset.items.values()), progress=progress)
        rankers, passes = item_rankers(config.item_vectors, dataset, settings, store,
                                       run=config.name, seed=config.seed, progress=progress)
        extra_scorers = partial(_item_rows, rankers, config.item_vectors.names)
    harness = Harness(config, dataset=dataset, store=store, out=folder, progress=progress,
                      extra_scorers=extra_scorers, models=settings.home / "eval-models")
    if config.variants:
        result = harness.prepare()
        harness.baselines(result)
        with open_eval_llm(config.llm, settings) as client:
            harness.variants(result, client)
    else:
        result = harness.run(None)
    summary = summarize(result)
    features = ""
    if rankers is not None:
        summary["item_vectors"] = features_record(harness, result, rankers, passes,
                                                  config.protocol.settings[0])
        features = "\n## Item vectors\n\n" + features_markdown(summary["item_vectors"])
    write_report(result, summary, folder, config_text)
    if features:
        with (folder / "metrics.md").open("a", encoding="utf-8") as f:
            f.write(features)
    return summary, folder


def evaluate_dialogue_config(
    config_path: Path, *, out: Path | None, settings: Settings, progress: bool = True
) -> tuple[dict[str, Any], Path]:
    """The conversation and simulation protocols (eval.conversation, eval.simulation)."""
    from eval.conversation import evaluate_conversation

    config = load_conversation_config(config_path)
    folder = out or DEFAULT_REPORTS / config.name
    config_text = config_path.read_text(encoding="utf-8")
    spec = config.llm or LLMSpec()

    def client() -> AbstractContextManager[LLMClient]:
        return open_llm(settings, spec)

    if config.protocol.kind == "simulation":
        from eval.simulation import evaluate_simulation

        return evaluate_simulation(config, settings, folder, config_text, open_client=client,
                                   progress=progress)
    return evaluate_conversation(config, settings, folder, config_text, open_client=client,
                                 progress=progress)


def _item_rows(rankers: ColdStartRankers, names: Sequence[str],
               result: EvalResult) -> Sequence[Scorer]:
    return [r for r in rankers(result.loo.train, result.loo.positives) if r.name in names]
