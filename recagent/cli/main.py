"""`recagent` command line: the parser, settings from flags and environment, exit codes.

The only place that reads environment variables. Exit codes: 0 success (also when nothing
is left to recommend), 1 unexpected failure, 2 bad input or configuration (always before
any work starts), 3 recommendations were produced but degraded (only with --strict),
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from pydantic import ValidationError

from recagent.cli import commands, models, serve
from recagent.cli.options import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    bounded,
    flag_groups,
    problems,
)
from recagent.errors import ConfigError, RecagentError

ENV_HELP = """environment (flags win):
  RECAGENT_HOME          cache folder (default ~/.cache/recagent)
  RECAGENT_CHROMA_URL    use a `chroma run` server instead of the embedded store
  RECAGENT_LLM_BASE_URL  an OpenAI-compatible server (vLLM, OpenAI, ...) instead of the
                         embedded model; RECAGENT_LLM_MODEL names the model there
  RECAGENT_LLM_API_KEY   API key for that server (falls back to OPENAI_API_KEY)
  RECAGENT_MODEL         embedded model preset or a .gguf path
  RECAGENT_LLM_DEADLINE_S  most seconds an LLM request may take (--deadline)
  RECAGENT_VLLM_PYTHON   python of the vLLM environment (serve-llm --backend vllm)

exit codes: 0 ok, 1 failure, 2 bad input or configuration, 3 degraded (with --strict),
130 interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recagent",
        description="Recommend items with an LLM over a Chroma catalog: retrieve, rank, explain.",
        epilog=ENV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    flags = flag_groups()
    base, store, llm, pipeline = flags["base"], flags["store"], flags["llm"], flags["pipeline"]
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[base, store],
                       help="load a catalog into Chroma, and its interactions",
                       description="Load a catalog into Chroma (idempotent: only new or "
                                   "changed items are embedded) and interactions (ratings, "
                                   "likes) into HOME/interactions.sqlite (idempotent too: "
                                   "new rows are added, changed ratings updated).")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--movielens", type=Path,
                     help="a MovieLens 100K or 1M folder; its ratings too when it holds "
                          "u.data or ratings.dat")
    src.add_argument("--file", type=Path, help="a .jsonl or .csv catalog (id, title, text, ...)")
    src.add_argument("--redial", type=Path, metavar="FOLDER",
                     help="a ReDial folder (iEvaLM form, e.g. shared/data/redial): its "
                          "6,583 movies with plots and people, and one history per validation "
                          "dialogue (the movies the seeker liked or disliked)")
    p.add_argument("--interactions", type=Path, metavar="FILE",
                   help="interactions: u.data, ratings.dat (or any '::' .dat), or a .csv/.jsonl "
                        "with user, item, rating and/or liked, timestamp (optional); with "
                        "--movielens (instead of its ratings file) or --file, or alone into "
                        "the existing catalog; an item the catalog lacks is refused")
    p.set_defaults(func=commands.cmd_ingest)

    p = sub.add_parser("recommend", parents=[base, store, llm, pipeline],
                       help="recommend for a history",
                       description="Recommend for a history of item ids, oldest first.")
    p.add_argument("--history", required=True,
                   help="comma-separated item ids the user liked, e.g. 1,50,181; "
                        "or ID=RATING on a 1-5 scale, e.g. 1=5,50=2")
    p.add_argument("--k", type=bounded(1, 100), default=10,
                   help="how many items (default 10; at most --candidates)")
    p.add_argument("--strict", action="store_true", help="exit 3 when the answer is degraded")
    p.set_defaults(func=commands.cmd_recommend)

    p = sub.add_parser("chat", parents=[base, store, llm, pipeline],
                       help="refine recommendations in a conversation",
                       description="Chat: say what you liked and what to avoid; each message "
                                   "refines the list. Interactive unless --script is given.")
    p.add_argument("--script", type=Path, help="a file with one user message per line")
    p.add_argument("--session", type=Path,
                   help="a JSON file: resume the session saved there, save after each turn")
    p.add_argument("--k", type=bounded(1, 50), default=5, help="items per answer (default 5)")
    p.add_argument("--agent", action="store_true",
                   help="the agent plans each turn (one LLM call: a plan of tool calls over "
                        "the catalog), instead of the rules with the LLM's reading; any "
                        "failure falls back to the rules, marked degraded")
    p.set_defaults(func=commands.cmd_chat)

    p = sub.add_parser("fit", parents=[base, store, llm],
                       help="fit the fusion weights on the ingested interactions",
                       description="Learn the retrieval and reranking fusion weights on "
                                   "validation users of the ingested interactions and save "
                                   "them beside the catalog; recommend and chat use them.")
    p.add_argument("--users", type=bounded(10, 100000), default=None,
                   help="validation users to fit on (default: every user the interactions "
                        "allow without the LLM, 200 with it: each costs a model call)")
    p.add_argument("--score-llm", action="store_true",
                   help="also ask the LLM to score every validation user's candidates and "
                        "fit its weight (one call per user: minutes to hours on a CPU; a "
                        "progress bar says how long); without it the product ranks without "
                        "the LLM and says so")
    p.add_argument("--no-llm", action="store_true",
                   help="fit without the LLM's scores (the default; kept for old scripts)")
    p.set_defaults(func=commands.cmd_fit)

    serve.add_command(sub, [base, store, llm, pipeline])
    models.add_commands(sub, base, llm, flags["vllm"])
    for plugin in entry_points(group="recagent.commands"):  # e.g. `eval`, from the eval package
        plugin.load()(sub, [base, store, llm])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    # Before numpy loads (nothing above imports it): a request's products are small, and
    # BLAS threads only add wake-ups; on a busy machine they cost 20 ms per product
    # instead of 0.2 (measured, ML-100K's 1,682 x 384 text vectors at load 20 on 2 cores).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        code: int = args.func(args)
        return code
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidationError as e:
        print(f"error: {problems(e)}", file=sys.stderr)
        return EXIT_CONFIG
    except RecagentError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
