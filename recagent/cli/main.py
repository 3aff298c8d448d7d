"""`recagent` command line. The only place that reads environment variables.

Exit codes: 0 success, 1 unexpected failure, 2 bad input or configuration,
3 recommendations were produced but degraded (only with --strict), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from recagent.errors import ConfigError, RecagentError
from recagent.types import Interaction, Recommendation, UserHistory
from recagent.wiring import (
    LLMSpec,
    RankerSpec,
    RetrieverSpec,
    Settings,
    open_parts,
    open_recommender,
    open_store,
)

if TYPE_CHECKING:
    from recagent.llm.backends.vllm_model import VLLMModelPreparer
    from recagent.llm.backends.vllm_server import VLLMServer

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_DEGRADED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

ENV_HELP = """environment (flags win):
  RECAGENT_HOME          cache folder (default ~/.cache/recagent)
  RECAGENT_CHROMA_URL    use a `chroma run` server instead of the embedded store
  RECAGENT_LLM_BASE_URL  an OpenAI-compatible server (vLLM, OpenAI, ...) instead of the
                         embedded model; RECAGENT_LLM_MODEL names the model there
  RECAGENT_LLM_API_KEY   API key for that server (falls back to OPENAI_API_KEY)
  RECAGENT_MODEL         embedded model preset or a .gguf path
  RECAGENT_VLLM_PYTHON   python of the vLLM environment (serve-llm --backend vllm)
"""


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags first, then the environment, then the defaults."""
    env = os.environ
    home = args.home or env.get("RECAGENT_HOME") or Path.home() / ".cache" / "recagent"
    llm = {
        "base_url": args.llm_base_url or env.get("RECAGENT_LLM_BASE_URL") or None,
        "model": args.llm_model or env.get("RECAGENT_LLM_MODEL") or None,
        "preset": args.model or env.get("RECAGENT_MODEL") or None,
        "threads": args.threads,
    }
    values: dict[str, Any] = {
        "home": Path(home),
        "chroma_url": args.chroma_url or env.get("RECAGENT_CHROMA_URL") or None,
        "collection": args.collection,
        "llm": LLMSpec(**{k: v for k, v in llm.items() if v is not None}),
        "llm_api_key": env.get("RECAGENT_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        or "not-needed",
    }
    if getattr(args, "n_candidates", None) is not None:
        values["n_candidates"] = args.n_candidates
    if getattr(args, "retriever", None):
        values["retriever"] = RetrieverSpec(kind=args.retriever)
    if getattr(args, "no_llm", False):
        values["ranker"] = None
    elif hasattr(args, "method"):
        ranker = {"method": args.method, "template": args.template, "bootstrap": args.bootstrap}
        values["ranker"] = RankerSpec(**{k: v for k, v in ranker.items() if v is not None})
    return Settings(**values)


def parse_history(spec: str) -> UserHistory:
    """'1,50,181' (liked, oldest first) or '1=5,50=2' (ratings on a 1-5 scale)."""
    interactions = []
    for n, token in enumerate(t.strip() for t in spec.split(",")):
        if not token:
            raise ConfigError(f"--history has an empty entry in {spec!r}")
        item_id, _, rating = token.partition("=")
        if rating:
            try:
                value = float(rating)
            except ValueError:
                raise ConfigError(
                    f"--history: rating {rating!r} of {item_id} is not a number"
                ) from None
            interactions.append(Interaction(item_id=item_id, rating=value, ts=n))
        else:
            interactions.append(Interaction(item_id=item_id, liked=True, ts=n))
    try:
        return UserHistory(interactions=interactions)
    except ValueError as e:
        raise ConfigError(f"--history: {e}") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    from retrieval.catalog_files import load_catalog, load_movielens

    source = args.movielens or args.file
    if not source.exists():
        raise ConfigError(f"{source} does not exist")
    items = load_movielens(source) if args.movielens else load_catalog(source)
    store = open_store(settings_from_args(args))
    report = store.ingest(items, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(report.model_dump_json())
    else:
        print(f"{source}: {report.total} items — {report.added} added, {report.updated} updated,"
              f" {report.unchanged} unchanged; collection now holds {store.count()}")
    return EXIT_OK


def _print_recommendation(rec: Recommendation) -> None:
    width = max((len(i.title) for i in rec.items), default=10)
    for n, item in enumerate(rec.items, 1):
        print(f"{n:>2}. {item.title:<{width}}  [{item.item_id}]")
        print(f"    {item.explanation}")
    t = rec.trace
    status = f"DEGRADED ({t.degraded_reason})" if t.degraded else "ok"
    print(f"\n{t.n_candidates} candidates · model {t.model or '-'} · "
          f"{t.usage.prompt_tokens}+{t.usage.completion_tokens} tokens · "
          f"{t.latency_s:.1f} s · {status}" + (" · repaired" if t.repaired else ""))


def cmd_recommend(args: argparse.Namespace) -> int:
    history = parse_history(args.history)
    settings = settings_from_args(args)
    with open_recommender(settings) as recommender:
        rec = recommender.recommend(history, k=args.k)
    if args.json:
        out = {
            "items": [i.model_dump(include={"item_id", "title", "score", "explanation", "source"})
                      for i in rec.items],
            "degraded": rec.degraded,
            "trace": rec.trace.model_dump(),
        }
        print(json.dumps(out, indent=2))
    else:
        _print_recommendation(rec)
    if rec.degraded:
        print(f"warning: degraded answer: {rec.trace.degraded_reason}", file=sys.stderr)
        if args.strict:
            return EXIT_DEGRADED
    return EXIT_OK


def cmd_serve_llm(args: argparse.Namespace) -> int:
    from recagent.llm.backends.llamacpp import LocalLLMServer, serve_forever
    from recagent.llm.backends.presets import resolve_model

    settings = settings_from_args(args)
    if args.backend == "vllm":
        serve_forever(_vllm_server(args, settings))
        return EXIT_OK
    name, path = resolve_model(settings.preset, settings.artifacts)
    server = LocalLLMServer(path, model_name=name, n_threads=args.threads, port=args.port,
                            n_parallel=args.parallel)
    serve_forever(server)
    return EXIT_OK


def _vllm_python(args: argparse.Namespace) -> Path:
    return Path(args.vllm_python or os.environ.get("RECAGENT_VLLM_PYTHON")
                or Path(".venv-vllm") / "bin" / "python")


def _vllm_preparer(args: argparse.Namespace, settings: Settings) -> VLLMModelPreparer:
    return settings.vllm_preparer(_vllm_python(args))


def _vllm_server(args: argparse.Namespace, settings: Settings) -> VLLMServer:
    """A preset is converted (once) to a folder; a folder or a model name is served as is,
    under --llm-model if given, else the preset's or the folder's name."""
    from recagent.llm.backends.presets import PRESETS
    from recagent.llm.backends.vllm_server import VLLMServer, usable_cores

    spec = settings.preset
    folder = _vllm_preparer(args, settings).prepare(spec).folder if spec in PRESETS else None
    model = str(folder) if folder else spec
    name = args.llm_model or Path(spec).name  # what requests must name (vLLM 404s others)
    cores = args.cpu_cores or (usable_cores() if args.device == "cpu" else None)
    return VLLMServer(python=_vllm_python(args), model=model, served_model_name=name,
                      device=args.device, port=args.port, max_model_len=args.max_model_len,
                      cpu_cores=cores)


def cmd_models(args: argparse.Namespace) -> int:
    from recagent.llm.backends.artifacts import ARTIFACTS
    from recagent.llm.backends.presets import PRESETS

    settings = settings_from_args(args)
    if args.action == "list":
        rows = [{"preset": p.name, "artifact": p.artifact,
                 "size_mb": round(ARTIFACTS[p.artifact].size / 1e6),
                 "cached": (settings.artifacts.cache_dir / ARTIFACTS[p.artifact].filename)
                 .exists(), "description": p.description} for p in PRESETS.values()]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in [] if args.json else rows:
            mark = "*" if r["cached"] else " "
            print(f"{mark} {r['preset']:<14} {r['size_mb']:>5} MB  {r['description']}")
        return EXIT_OK
    if args.action == "prepare-vllm":
        preparer = _vllm_preparer(args, settings)
        for name in args.names or [settings.preset]:
            prepared = preparer.prepare(name)
            note = f"converted in {prepared.converted_s:.0f} s" if prepared.converted_s \
                else "already prepared"
            print(f"{prepared.folder}  ({note})")
        return EXIT_OK
    names = args.names or [settings.preset, "minilm-onnx", "minilm-tokenizer"]
    for name in names:
        artifact = PRESETS[name].artifact if name in PRESETS else name
        print(settings.artifacts.path(artifact))
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    """A conversation: interactive, or one message per line of --script."""
    from recagent.chat.console import print_turn, script_messages, typed_messages
    from recagent.chat.session import ChatSession

    settings = settings_from_args(args)
    script = script_messages(args.script) if args.script else None
    with open_parts(settings) as parts:
        recommender, client, prompts = parts.recommender, parts.client, parts.prompts
        if args.session and args.session.exists():
            session = ChatSession.from_json(args.session.read_text(encoding="utf-8"),
                                            recommender, client, prompts, k=args.k)
        else:
            session = ChatSession(recommender, client, prompts, k=args.k)
        for message in script if script is not None else typed_messages():
            try:
                turn = session.send(message)
            except ConfigError as e:
                if script is not None:
                    raise
                print(f"error: {e}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps(turn.model_dump(mode="json", exclude={"trace"})), flush=True)
            else:
                print_turn(turn)
            if args.session:
                args.session.write_text(session.to_json(), encoding="utf-8")
    return EXIT_OK


def add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    """How candidates are found and ranked (recagent.wiring's specs)."""
    p.add_argument("--retriever", choices=["semantic", "hybrid"],
                   help="candidate source (default semantic; hybrid needs interactions)")
    p.add_argument("--method", choices=["listwise", "logprob", "nir"],
                   help="LLM ranking method (default listwise)")
    p.add_argument("--template", help="prompt template (rank_zero_shot, rank_recency, ...)")
    p.add_argument("--bootstrap", type=int,
                   help="rank this many shuffles of the candidates and aggregate (Borda)")
    p.add_argument("--no-llm", action="store_true", help="retrieval order only, no LLM")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recagent",
        description="Recommend items with an LLM over a Chroma catalog: retrieve, rank, explain.",
        epilog=ENV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path, help="cache folder (models, embedded Chroma)")
    common.add_argument("--chroma-url", help="Chroma server URL, e.g. http://127.0.0.1:8000")
    common.add_argument("--collection", default="catalog", help="Chroma collection name")
    common.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. http://host:8000/v1")
    common.add_argument("--llm-model", help="model name on that server")
    common.add_argument("--model", help="embedded model preset or .gguf path "
                                        "(see `recagent models list`)")
    common.add_argument("--threads", type=int, help="CPU threads for the embedded model")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="load a catalog into Chroma")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--movielens", type=Path, help="a MovieLens 100K or 1M folder")
    src.add_argument("--file", type=Path, help="a .jsonl or .csv catalog (id, title, text, ...)")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("recommend", parents=[common], help="recommend for a history",
                       description="Recommend for a history of item ids, oldest first.")
    p.add_argument("--history", required=True,
                   help="comma-separated item ids the user liked, e.g. 1,50,181; "
                        "or ID=RATING on a 1-5 scale, e.g. 1=5,50=2")
    p.add_argument("--k", type=int, default=10, help="how many items (default 10)")
    p.add_argument("--candidates", dest="n_candidates", type=int,
                   help="candidates retrieved for the LLM to rank (default 20)")
    add_pipeline_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 3 when the answer is degraded")
    p.set_defaults(func=cmd_recommend)

    vllm = argparse.ArgumentParser(add_help=False)
    vllm.add_argument("--vllm-python", type=Path,
                      help="python of the vLLM environment (default .venv-vllm/bin/python, "
                           "built by `make vllm-venv`)")

    p = sub.add_parser("serve-llm", parents=[common, vllm],
                       help="run a model as an OpenAI-compatible server (embedded or vLLM)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--parallel", type=int, default=2, help="parallel request slots (llama.cpp)")
    p.add_argument("--backend", choices=["llamacpp", "vllm"], default="llamacpp",
                   help="llamacpp: the embedded server (default); vllm: a vLLM child process, "
                        "serving a preset converted by `models prepare-vllm`, a Hugging Face "
                        "folder or a model name given with --model")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="vLLM device")
    p.add_argument("--cpu-cores", help="vLLM on CPU: cores for its threads, e.g. 0-1 "
                                       "(default: all this process may use)")
    p.add_argument("--max-model-len", type=int, default=2048, help="vLLM context length")
    p.set_defaults(func=cmd_serve_llm)

    p = sub.add_parser("models", parents=[common, vllm],
                       help="list or fetch model presets, or prepare them for vLLM")
    p.add_argument("action", choices=["list", "fetch", "prepare-vllm"])
    p.add_argument("names", nargs="*",
                   help="presets or artifacts to fetch (default: the default preset and the "
                        "embedding model); prepare-vllm: presets to convert to Hugging Face "
                        "folders under HOME/vllm-models (default: the default preset)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("chat", parents=[common], help="refine recommendations in a conversation",
                       description="Chat: say what you liked and what to avoid; each message "
                                   "refines the list. Interactive unless --script is given.")
    p.add_argument("--script", type=Path, help="a file with one user message per line")
    p.add_argument("--session", type=Path,
                   help="a JSON file: resume the session saved there, save after each turn")
    p.add_argument("--k", type=int, default=5, help="items per answer (default 5)")
    p.add_argument("--candidates", dest="n_candidates", type=int,
                   help="candidates retrieved for the LLM to rank (default 20)")
    add_pipeline_flags(p)
    p.set_defaults(func=cmd_chat)
    for plugin in entry_points(group="recagent.commands"):  # e.g. `eval`, from the eval package
        plugin.load()(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, ValidationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except RecagentError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
