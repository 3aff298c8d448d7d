"""What the command line shares: exit codes, flag groups, and settings from flags and the
environment (the only place that reads environment variables)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recagent.errors import ConfigError
from recagent.rank.spec import RankerSpec
from recagent.wiring.settings import LLMSpec, RetrieverSpec, Settings

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_DEGRADED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def problems(error: ValidationError) -> str:
    """A pydantic error as one line per problem, named by field, without the dump."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                     for e in error.errors())


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags first, then the environment, then the defaults."""
    env = os.environ
    home = args.home or env.get("RECAGENT_HOME") or Path.home() / ".cache" / "recagent"
    llm = {
        "base_url": getattr(args, "llm_base_url", None) or env.get("RECAGENT_LLM_BASE_URL"),
        "model": getattr(args, "llm_model", None) or env.get("RECAGENT_LLM_MODEL"),
        "preset": getattr(args, "model", None) or env.get("RECAGENT_MODEL"),
        "threads": getattr(args, "threads", None),
        "deadline_s": _given(getattr(args, "deadline", None), env.get("RECAGENT_LLM_DEADLINE_S")),
    }
    values: dict[str, Any] = {
        "home": Path(home),
        "chroma_url": getattr(args, "chroma_url", None) or env.get("RECAGENT_CHROMA_URL") or None,
        "collection": getattr(args, "collection", "catalog"),
        "llm_api_key": env.get("RECAGENT_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        or "not-needed",
    }
    if getattr(args, "n_candidates", None) is not None:
        values["n_candidates"] = args.n_candidates
    if getattr(args, "retriever", None):
        values["retriever"] = {"kind": args.retriever}
    if getattr(args, "explain", None):
        values["explain_with_llm"] = args.explain == "llm"
    if getattr(args, "no_llm", False):
        values["ranker"] = None
    elif any(getattr(args, f, None) for f in ("method", "template", "bootstrap")):
        # a ranker named on the command line runs as named (recagent.wiring.product_ranker);
        # its own reasons are never shown (explanations come from evidence), so none asked
        method = args.method or ("listwise" if args.template else "logprob")
        ranker = {"method": method, "template": args.template, "bootstrap": args.bootstrap,
                  "explain": False}
        values["ranker"] = {k: v for k, v in ranker.items() if v is not None}
    try:
        values["llm"] = LLMSpec.model_validate({k: v for k, v in llm.items()
                                                if v or (k == "deadline_s" and v is not None)})
        if isinstance(values.get("retriever"), dict):
            values["retriever"] = RetrieverSpec(**values["retriever"])
        if isinstance(values.get("ranker"), dict):
            values["ranker"] = RankerSpec(**values["ranker"])
        return Settings(**values)
    except ValidationError as e:
        raise ConfigError(f"bad settings: {problems(e)}") from None


def _given(flag: float | None, env: str | None) -> float | str | None:
    """The flag if given at all (0 is a value, not "unset"), else the environment's."""
    return flag if flag is not None else env or None


def seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0 (0 would leave the LLM no time at all:
    --no-llm says that)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text} (for no "
                                         "LLM at all, use --no-llm)")
    return value


def bounded(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]; argparse names the flag on error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    return parse


def flag_groups() -> dict[str, argparse.ArgumentParser]:
    """Flags shared by commands, in groups, so each command lists only what it uses."""
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                      help="log what happens")  # SUPPRESS: `recagent -v CMD` stays verbose
    base.add_argument("--home", type=Path, help="cache folder (models, embedded Chroma)")
    base.add_argument("--json", action="store_true", help="machine-readable output")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--chroma-url", help="Chroma server URL, e.g. http://127.0.0.1:8000")
    store.add_argument("--collection", default="catalog", help="Chroma collection name")
    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. http://host:8000/v1")
    llm.add_argument("--llm-model", help="model name on that server")
    llm.add_argument("--model", help="embedded model: a preset (see `recagent models list`), "
                                     "a .gguf path, or a Hugging Face Hub file pinned to a "
                                     "revision, hf:OWNER/REPO/PATH/FILE.gguf@REVISION"
                                     "[#sha256=HEX] (a commit hash or tag; fetched once "
                                     "with `models fetch`, see docs/models.md)")
    llm.add_argument("--threads", type=bounded(1), help="CPU threads for the embedded model")
    llm.add_argument("--deadline", type=seconds, metavar="SECONDS",
                     help="most seconds an LLM request may take, retries included; past it "
                          "the answer is degraded (default 600 embedded, 180 for a server)")
    pipeline = argparse.ArgumentParser(add_help=False)
    pipeline.add_argument("--candidates", dest="n_candidates", type=bounded(1, 100),
                          help="candidates retrieved for the LLM to rank (default 20)")
    pipeline.add_argument("--retriever", choices=["semantic", "hybrid"],
                          help="candidate source (default semantic; hybrid needs interactions)")
    pipeline.add_argument("--method", choices=["listwise", "logprob", "nir", "likelihood"],
                          help="LLM ranking method (default listwise; likelihood needs a server "
                               "with prompt logprobs, e.g. vLLM via --llm-base-url)")
    pipeline.add_argument("--template", help="prompt template (rank_zero_shot, rank_recency, ...)")
    pipeline.add_argument("--bootstrap", type=bounded(1, 20),
                          help="rank this many shuffles of the candidates and aggregate (Borda)")
    pipeline.add_argument("--no-llm", action="store_true", help="retrieval order only, no LLM")
    pipeline.add_argument("--explain", choices=["template", "llm"],
                          help="who words the explanations: templates from the evidence "
                               "(the default: no shipped model's sentences pass the checker "
                               "often enough, docs/product.md), or the LLM (checked; a "
                               "template replaces what fails)")
    vllm = argparse.ArgumentParser(add_help=False)
    vllm.add_argument("--vllm-python", type=Path,
                      help="python of the vLLM environment (default .venv-vllm/bin/python, "
                           "built by `make vllm-venv`)")
    return {"base": base, "store": store, "llm": llm, "pipeline": pipeline, "vllm": vllm}
