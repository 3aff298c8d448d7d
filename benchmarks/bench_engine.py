"""Rankings through the in-process vLLM engine (recagent/vllm_engine.py), several at once.

Builds one `vllm.LLM` on a Hugging Face folder, then runs `--jobs` ranking jobs on
`--threads` threads through one VLLMEngineClient: each job is a ListwiseRanker answer
(k of 8 candidates; letters only, or with a reason each given `--explain`) and a
LogprobRanker scoring of the same candidates. With `--sequential` the same jobs run
again one at a time, on the same engine (both after one warm-up request). Prints one
JSON object: engine start, wall times, every `chat` batch's size, and each job's
answers; tests/test_vllm_engine.py runs it and checks them. Needs recagent and vLLM in
one environment, e.g.
    PYTHONPATH=. .venv-vllm/bin/python benchmarks/bench_engine.py .cache/vllm-models/smollm2-135m-*
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from recagent.llm.backends.vllm_engine import VLLMEngineClient, load_engine, shutdown_engine
from recagent.llm.backends.vllm_server import usable_cores
from recagent.llm.prompts import PromptLibrary
from recagent.rank.factory import RankerSpec, build_ranker
from recagent.types import Candidate, Interaction, Item

TITLES = [
    "Toy Story (1995): animated toys come to life", "Finding Nemo (2003): a lost clownfish",
    "Star Wars (1977): rebels fight a galactic empire", "Interstellar (2014): a wormhole trip",
    "The Exorcist (1973): a priest fights a demon", "Halloween (1978): a masked killer",
    "Notting Hill (1999): a bookseller and a movie star", "Casablanca (1942): wartime lovers",
    "The Martian (2015): stranded on Mars", "Shrek (2001): an ogre rescues a princess",
    "The Ring (2002): a cursed videotape", "Before Sunrise (1995): one night in Vienna",
    "Star Trek (1979): the starship Enterprise", "Frozen (2013): a princess with ice powers",
]
LIKED = ["Alien (1979): a creature stalks a spaceship crew",
         "The Thing (1982): a shape-shifting alien in Antarctica"]
JOB_WINDOWS = [(0, 1), (2, 2), (4, 3), (6, 2)]
"""(first candidate, k) per job; a job's 8 candidates start at that title."""


def history() -> list[tuple[Interaction, Item]]:
    return [(Interaction(item_id=f"h{n}", liked=True, ts=n), Item(id=f"h{n}", title=t, text=t))
            for n, t in enumerate(LIKED)]


def job_candidates(first: int) -> list[Candidate]:
    picked = [(n % len(TITLES)) for n in range(first, first + 8)]
    return [Candidate(item=Item(id=f"c{n}", title=TITLES[n], text=TITLES[n]), rank=r,
                      score=1.0 - r / 8) for r, n in enumerate(picked)]


def run_job(client: VLLMEngineClient, first: int, k: int, explain: bool) -> dict[str, Any]:
    candidates = job_candidates(first)
    prompts = PromptLibrary()
    listwise = build_ranker(RankerSpec(explain=explain), client, prompts).rank(
        history(), candidates, k)
    logprob = build_ranker(RankerSpec(method="logprob", explain=False), client, prompts).rank(
        history(), candidates, k)
    return {
        "candidates": [c.item.id for c in candidates], "k": k,
        "listwise": {"attempts": listwise.invocation.attempts, "raw": listwise.invocation.raw,
                     "order": [i for i, _ in listwise.order], "unknown": listwise.unknown,
                     "usage": listwise.invocation.usage.model_dump()},
        "logprob": {"scores": logprob.scores, "order": [i for i, _ in logprob.order]},
    }


def run_all(client: VLLMEngineClient, jobs: list[tuple[int, int]], threads: int,
            explain: bool) -> tuple[float, list[dict[str, Any]]]:
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda job: run_job(client, *job, explain), jobs))
    return time.perf_counter() - began, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a Hugging Face folder (`recagent models prepare-vllm`)")
    parser.add_argument("--name", default="smollm2-135m")
    parser.add_argument("--jobs", type=int, default=len(JOB_WINDOWS))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sequential", action="store_true",
                        help="also run the same jobs one at a time")
    parser.add_argument("--explain", action="store_true",
                        help="listwise answers with a reason per item (longer decoding)")
    parser.add_argument("--out", type=Path, help="write the JSON here (vLLM logs to stdout)")
    args = parser.parse_args()
    jobs = [JOB_WINDOWS[n % len(JOB_WINDOWS)] for n in range(args.jobs)]
    began = time.perf_counter()
    llm = load_engine(args.model, device="cpu", cpu_cores=usable_cores())
    report: dict[str, Any] = {"engine_start_s": round(time.perf_counter() - began, 1)}
    try:
        with VLLMEngineClient(llm, model=args.name) as client:
            # first-call costs (structured-output backend, kernels) stay out of the timings
            client.complete([{"role": "user", "content": "Hi"}], max_tokens=4,
                            schema={"type": "object", "properties": {"a": {"type": "string"}}})
            client.stats.sizes.clear()
            wall, done = run_all(client, jobs, args.threads, args.explain)
            report |= {"threads": args.threads, "concurrent_s": round(wall, 2),
                       "batch_sizes": list(client.stats.sizes), "jobs": done}
        if args.sequential:
            with VLLMEngineClient(llm, model=args.name) as client:
                wall, _ = run_all(client, jobs, 1, args.explain)
                report |= {"sequential_s": round(wall, 2),
                           "sequential_batch_sizes": list(client.stats.sizes)}
    finally:
        shutdown_engine(llm)
    text = json.dumps(report)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
