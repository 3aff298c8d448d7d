"""Speed of the embedded local LLM per model preset: startup, prompt and decode tok/s.

For each preset: start LocalLLMServer (time to first healthy /health, model load
included), then send one fixed ranking-style prompt `--runs` times through the openai
SDK with the prompt cache off and EOS ignored, so every run processes the whole prompt
and decodes exactly `--max-tokens` tokens. Speeds are llama.cpp's own timings.
    .venv/bin/python benchmarks/bench_llm.py smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from recagent.llm.backends.presets import PRESETS
from recagent.wiring import LLMSpec, Settings, embedded_server

MOVIES = [
    "Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)",
    "Copycat (1995)", "Twelve Monkeys (1995)", "Babe (1995)", "Dead Man Walking (1995)",
    "Richard III (1995)", "Seven (Se7en) (1995)", "Usual Suspects, The (1995)",
    "Mighty Aphrodite (1995)", "Postino, Il (1994)", "Mr. Holland's Opus (1995)",
    "French Twist (Gazon maudit) (1995)", "From Dusk Till Dawn (1996)",
    "White Balloon, The (1995)", "Antonia's Line (1995)", "Angels and Insects (1995)",
    "Muppet Treasure Island (1996)",
]
PROMPT = (
    "A user liked these movies, oldest first: Star Wars (1977); Fargo (1996); "
    "Return of the Jedi (1983).\nCandidates:\n"
    + "\n".join(f"[{n}] {title}" for n, title in enumerate(MOVIES, 1))
    + "\nRank the candidates from most to least likely to be watched next, and give a "
    "one-sentence reason for each of the top five."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "ranking": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1, "maximum": len(MOVIES)},
                    "reason": {"type": "string"},
                },
                "required": ["id", "reason"],
            },
        }
    },
    "required": ["ranking"],
}


def run_once(client: OpenAI, model: str, max_tokens: int, schema: bool) -> dict[str, float]:
    extra: dict[str, Any] = {"cache_prompt": False, "ignore_eos": not schema}
    kwargs: dict[str, Any] = {}
    if schema:
        kwargs["response_format"] = {
            "type": "json_schema", "json_schema": {"name": "ranking", "schema": SCHEMA},
        }
    began = time.perf_counter()
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=max_tokens,
        temperature=0,
        extra_body=extra,
        **kwargs,
    )
    wall = time.perf_counter() - began
    timings = (reply.model_extra or {})["timings"]
    return {
        "prompt_n": timings["prompt_n"],
        "prompt_tps": timings["prompt_per_second"],
        "decode_n": timings["predicted_n"],
        "decode_tps": timings["predicted_per_second"],
        "wall_s": wall,
    }


def bench(name: str, args: argparse.Namespace) -> None:
    settings = Settings(home=args.home, llm=LLMSpec(preset=name, context=args.n_ctx, parallel=1,
                                                    threads=args.n_threads))
    load = os.getloadavg()[0]
    with embedded_server(settings) as server:
        size_mb = server.model_path.stat().st_size / 1e6
        model = server.model
        # the raw SDK: llama.cpp's own `timings` (prompt and decode speed) are what is measured
        client = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=600)
        run_once(client, model, 4, args.schema)  # first touch of the weights, not timed
        runs = [run_once(client, model, args.max_tokens, args.schema) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"{name:14s} {size_mb:7.0f} MB  health {server.startup_s:5.2f} s  "
        f"prompt {med['prompt_n']:4.0f} tok {med['prompt_tps']:7.1f} tok/s  "
        f"decode {med['decode_n']:4.0f} tok {med['decode_tps']:6.1f} tok/s  "
        f"wall {med['wall_s']:6.2f} s  (median of {args.runs}; load avg before {load:.2f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", default=list(PRESETS), help="presets to run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--schema", action="store_true",
                        help="constrain output with a JSON schema (EOS then ends runs early)")
    parser.add_argument("--home", type=Path, default=Path(".cache"),
                        help="recagent home: model files under HOME/artifacts")
    args = parser.parse_args()
    for name in args.presets:
        bench(name, args)


if __name__ == "__main__":
    main()
