"""The same rankings through the embedded llama.cpp server and through vLLM, side by side.

For each backend: start the server (time to healthy /health), then run ListwiseRanker
(recagent's real prompt and schema, 20 candidates, top 5 with reasons) `--runs` times
one after another, then `--runs` times 4 at once, all through OpenAIClient. Prints
start time, mean latency per ranking, rankings per minute and completion tokens per
second; on a shared machine, compare only rows measured together.
    .venv/bin/python benchmarks/bench_backends.py --preset smollm2-135m
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

from bench_llm import MOVIES  # run as a script: benchmarks/ is on sys.path

from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.vllm_server import VLLMServer
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.factory import RankerSpec, build_ranker
from recagent.rank.listwise import LLMRanking
from recagent.types import Candidate, Interaction, Item
from recagent.wiring import LLMSpec, Settings, embedded_server, open_llm, vllm_server

LIKED = ["Star Wars (1977)", "Fargo (1996)", "Return of the Jedi (1983)"]


def task() -> tuple[list[tuple[Interaction, Item]], list[Candidate]]:
    history = [(Interaction(item_id=f"h{n}", liked=True, ts=n), Item(id=f"h{n}", title=t, text=t))
               for n, t in enumerate(LIKED)]
    candidates = [Candidate(item=Item(id=str(n), title=t, text=t), rank=n, score=1.0)
                  for n, t in enumerate(MOVIES)]
    return history, candidates


def measure(client: LLMClient, runs: int, workers: int) -> tuple[float, float, float]:
    """(mean seconds per ranking, rankings per minute, completion tokens per second)."""
    history, candidates = task()
    ranker = build_ranker(RankerSpec(), client, PromptLibrary())

    def one(_: int) -> tuple[LLMRanking, float]:
        began = time.perf_counter()
        ranking = ranker.rank(history, candidates, 5)
        return ranking, time.perf_counter() - began

    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, range(runs)))
    wall = time.perf_counter() - began
    tokens = sum(r.invocation.usage.completion_tokens for r, _ in done)
    return sum(s for _, s in done) / runs, 60 * runs / wall, tokens / wall


def bench(name: str, server: AbstractContextManager[LocalLLMServer | VLLMServer],
          settings: Settings, runs: int) -> None:
    load = os.getloadavg()[0]
    with server as running:
        remote = LLMSpec(base_url=running.base_url, model=running.model, deadline_s=1800)
        with open_llm(settings, remote) as client:
            client.complete([{"role": "user", "content": "Hi"}], max_tokens=2)  # warm-up
            rows = [(w, measure(client, runs, w)) for w in (1, 4)]
    for workers, (latency, per_min, tps) in rows:
        print(f"{name:9s} start {running.startup_s:5.1f} s  {workers} at once: "
              f"{latency:6.2f} s/ranking  {per_min:5.1f} rankings/min  {tps:6.1f} tok/s  "
              f"(load avg before {load:.2f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smollm2-135m")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--backends", nargs="+", default=["llamacpp", "vllm"])
    parser.add_argument("--home", type=Path, default=Path(".cache"),
                        help="artifacts/ and vllm-models/ under it")
    parser.add_argument("--vllm-python", type=Path, default=Path(".venv-vllm/bin/python"))
    args = parser.parse_args()
    settings = Settings(home=args.home, llm=LLMSpec(preset=args.preset, context=2048, parallel=4,
                                                    threads=os.cpu_count()))
    servers: dict[str, Callable[[], AbstractContextManager[LocalLLMServer | VLLMServer]]] = {
        "llamacpp": lambda: embedded_server(settings),
        "vllm": lambda: vllm_server(settings, python=args.vllm_python, served_name=args.preset),
    }
    for name in args.backends:
        bench(name, servers[name](), settings, args.runs)


if __name__ == "__main__":
    main()
