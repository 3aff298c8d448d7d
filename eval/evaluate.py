"""One call from a config file to a written report: what `recagent eval` runs.

This is where the parts are wired and their lifetimes owned: the Chroma collection of
the data set, and the LLM (an embedded server is started only if a variant needs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.config import EvalConfig, load_config
from eval.harness import Harness, load_dataset
from eval.rating import evaluate_rating, write_rating_report
from eval.report import write_report
from eval.summary import summarize
from recagent.stack import Settings, open_llm, open_store

DEFAULT_REPORTS = Path("eval") / "reports"


def llm_settings(config: EvalConfig, settings: Settings) -> Settings:
    """The config's [llm] table wins over the command line's defaults."""
    llm = config.llm
    update = {k: v for k, v in {"preset": llm.preset, "llm_base_url": llm.base_url,
                                "llm_model": llm.model, "llm_threads": llm.threads}.items()
              if v is not None}
    return settings.model_copy(update=update)


def evaluate_config(
    config_path: Path, *, out: Path | None, settings: Settings, progress: bool = True
) -> tuple[dict[str, Any], Path]:
    """Run the config, write its report folder (default eval/reports/NAME), return both."""
    config = load_config(config_path)
    folder = out or DEFAULT_REPORTS / config.name
    config_text = config_path.read_text(encoding="utf-8")
    dataset = load_dataset(config.dataset)
    if config.protocol.kind == "rating":
        if config.variants:
            with open_llm(llm_settings(config, settings)) as client:
                rating = evaluate_rating(config, dataset, client, out=folder, progress=progress)
        else:
            rating = evaluate_rating(config, dataset, None, out=folder, progress=progress)
        write_rating_report(rating, folder, config_text)
        return rating, folder
    store = open_store(settings.model_copy(update={"collection": f"eval-{dataset.name}"}))
    harness = Harness(config, dataset=dataset, store=store, out=folder, progress=progress)
    if config.variants:
        result = harness.prepare()
        harness.baselines(result)
        with open_llm(llm_settings(config, settings)) as client:
            harness.variants(result, client)
    else:
        result = harness.run(None)
    summary = summarize(result)
    write_report(result, summary, folder, config_text)
    return summary, folder
