"""`recagent eval`: registered by the eval package as a plugin of the recagent command line
(entry point group "recagent.commands"), so recagent never imports eval."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from recagent.cli.options import EXIT_OK, settings_from_args
from recagent.errors import ConfigError
from recagent.llm.backends.presets import canonical_name


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    """Add `eval` with the shared flags (`parents`: home, store and LLM flags)."""
    p = sub.add_parser("eval", parents=parents, help="offline evaluation from a config file",
                       description="Run baselines and prompt variants over a data set (see "
                                   "eval/configs/*.toml); stop and re-run to resume.")
    p.add_argument("config", type=Path, help="a TOML evaluation config")
    p.add_argument("--out", type=Path, help="report folder (default eval/reports/NAME)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from eval.config import load_config
    from eval.conversation_config import CONVERSATION_KINDS, protocol_kind
    from eval.evaluate import evaluate_config

    if protocol_kind(args.config) in CONVERSATION_KINDS:
        return _report(*evaluate_config(args.config, out=args.out,
                                        settings=settings_from_args(args), progress=True),
                       as_json=args.json)
    llm = load_config(args.config).llm
    overruled = [f"{flag} {given} (the config says {fixed})" for flag, given, fixed in (
        ("--model", args.model and canonical_name(args.model),
         llm.preset and canonical_name(llm.preset)),
        ("--llm-base-url", args.llm_base_url, llm.base_url),
        ("--llm-model", args.llm_model, llm.model)) if given and fixed and given != fixed]
    if overruled:  # the config's [llm] table wins, so a different flag would be ignored
        raise ConfigError(f"{args.config}: its [llm] table fixes the model, so "
                          f"{'; '.join(overruled)} would be ignored; copy the config and "
                          "change it there")
    summary, folder = evaluate_config(args.config, out=args.out,
                                      settings=settings_from_args(args), progress=True)
    return _report(summary, folder, as_json=args.json)


def _report(summary: dict[str, Any], folder: Path, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(summary, indent=2, default=float))
    else:
        print((folder / "metrics.md").read_text(encoding="utf-8"))
        print(f"report written to {folder}")
    return EXIT_OK
