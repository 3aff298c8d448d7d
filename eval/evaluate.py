"""One call from a config file to a written report: what `recagent eval` runs.

This is where the parts are wired and their lifetimes owned: the Chroma collection of
the data set, and the LLM (an embedded server, or with `engine = "vllm"` an in-process
vLLM engine, is started only if a variant needs it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval.config import LLMConfig, load_config
from eval.harness import Harness, load_dataset
from eval.rating import evaluate_rating, write_rating_report
from eval.report import write_report
from eval.summary import summarize
from recagent.errors import ConfigError
from recagent.llm.client import LLMClient
from recagent.wiring import Settings, open_llm, open_store

DEFAULT_REPORTS = Path("eval") / "reports"


def llm_settings(llm: LLMConfig, settings: Settings) -> Settings:
    """The config's [llm] table wins over the command line's defaults."""
    update = {k: v for k, v in {"preset": llm.preset, "llm_base_url": llm.base_url,
                                "llm_model": llm.model, "llm_threads": llm.threads}.items()
              if v is not None}
    return settings.model_copy(update=update)


@contextmanager
def open_eval_llm(llm: LLMConfig, settings: Settings) -> Iterator[LLMClient]:
    """The [llm] table's client for the duration: over HTTP (a server, or the embedded one
    started here), or with engine = "vllm" a vLLM engine loaded in this process."""
    if llm.engine == "http":
        with open_llm(llm_settings(llm, settings)) as client:
            yield client
        return
    from recagent.llm.backends import vllm_engine
    from recagent.llm.backends.vllm_server import usable_cores

    vllm_engine.check_vllm()  # before converting a preset that could not be loaded
    folder, name = engine_model(llm, settings)
    with vllm_engine.open_engine_client(
        str(folder), name=name, device=llm.device, max_model_len=llm.max_model_len,
        kv_cache_gib=llm.kv_cache_gib, cpu_cores=usable_cores() if llm.device == "cpu" else None,
    ) as engine:
        yield engine


def engine_model(llm: LLMConfig, settings: Settings) -> tuple[Path, str]:
    """`model` (a Hugging Face folder) or a preset, converted once into HOME/vllm-models as
    `recagent models prepare-vllm` does (with this environment's python, which has vLLM)."""
    from recagent.llm.backends.presets import PRESETS

    if llm.model is not None:
        folder = Path(llm.model).expanduser()
        if not (folder / "config.json").is_file():
            raise ConfigError(f"[llm] model = {llm.model!r}: engine = 'vllm' loads a local "
                              "Hugging Face folder (with config.json) or a preset; nothing is "
                              "fetched from a hub")
        return folder, folder.name
    preset = llm.preset or settings.preset
    if preset not in PRESETS:
        raise ConfigError(f"[llm] preset = {preset!r}: engine = 'vllm' takes a preset "
                          f"({', '.join(PRESETS)}) or model = a Hugging Face folder")
    return settings.vllm_preparer(Path(sys.executable)).prepare(preset).folder, preset


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
            with open_eval_llm(config.llm, settings) as client:
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
        with open_eval_llm(config.llm, settings) as client:
            harness.variants(result, client)
    else:
        result = harness.run(None)
    summary = summarize(result)
    write_report(result, summary, folder, config_text)
    return summary, folder
