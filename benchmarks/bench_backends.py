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

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.llm.backends.vllm_server import VLLMServer, usable_cores
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.factory import RankerSpec, build_ranker
from recagent.rank.listwise import LLMRanking
from recagent.types import Candidate, Interaction, Item

LIKED = ["Star Wars (1977)", "Fargo (1996)", "Return of the Jedi (1983)"]


def task() -> tuple[list[tuple[Interaction, Item]], list[Candidate]]:
    history = [(Interaction(item_id=f"h{n}", liked=True, ts=n), Item(id=f"h{n}", title=t, text=t))
               for n, t in enumerate(LIKED)]
    candidates = [Candidate(item=Item(id=str(n), title=t, text=t), rank=n, score=1.0)
                  for n, t in enumerate(MOVIES)]
    return history, candidates


def measure(client: OpenAIClient, runs: int, workers: int) -> tuple[float, float, float]:
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
          runs: int) -> None:
    load = os.getloadavg()[0]
    with server as running:
        client = OpenAIClient(base_url=running.base_url, model=running.model, timeout_s=600)
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
    store = ArtifactStore(args.home / "artifacts")
    servers: dict[str, Callable[[], AbstractContextManager[LocalLLMServer | VLLMServer]]] = {
        "llamacpp": lambda: LocalLLMServer(resolve_model(args.preset, store)[1],
                                           model_name=args.preset, n_ctx=2048, n_parallel=4,
                                           n_threads=os.cpu_count()),
        "vllm": lambda: VLLMServer(
            python=args.vllm_python, served_model_name=args.preset, cpu_cores=usable_cores(),
            model=str(VLLMModelPreparer(store, args.home / "vllm-models",
                                        python=args.vllm_python).prepare(args.preset).folder)),
    }
    for name in args.backends:
        bench(name, servers[name](), args.runs)


if __name__ == "__main__":
    main()
