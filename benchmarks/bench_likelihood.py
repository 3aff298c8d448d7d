"""Cost of likelihood scoring (recagent/rank/likelihood.py) on a vLLM server: seconds and
prompt tokens per user, with the per-item neutral terms cold (a fresh ranker) and warm
(the same ranker again: every prior already held, one request per user).

Users are seeded random MovieLens 100K users with at least `--history` + 1 liked movies
(rating >= 4, by time): the first `--history` are the history, the next one plus
`--candidates` - 1 random unseen movies are the candidates (all users share one pool of
random movies when `--shared-pool`, as a retrieval stage's popular items would).
`--compare-logprob` also times the letter-logprob ranker on the same users. Starts
one vLLM server from .venv-vllm for a prepared preset unless `--base-url` names a
running one; prints one JSON object.
    .venv/bin/recagent models prepare-vllm smollm2-135m
    .venv/bin/python benchmarks/bench_likelihood.py --preset smollm2-135m --users 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_recommend import liked_in_time

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.vllm_model import VLLMModelPreparer
from recagent.llm.backends.vllm_server import VLLMServer, usable_cores
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.likelihood import LikelihoodRanker
from recagent.rank.listwise import Ranker
from recagent.rank.logprob import LogprobRanker
from recagent.types import Candidate, Interaction, Item
from retrieval.catalog_files import load_movielens

REPO = Path(__file__).resolve().parents[1]

Case = tuple[list[tuple[Interaction, Item]], list[Candidate]]


def cases(data: Path, users: int, history: int, n_candidates: int, seed: int,
          shared_pool: bool) -> list[Case]:
    items = {item.id: item for item in load_movielens(data)}
    liked = {u: [i for _, i in sorted(v)] for u, v in liked_in_time(data / "u.data").items()}
    rng = random.Random(seed)
    eligible = sorted((u for u, v in liked.items() if len(v) > history), key=int)
    pool = rng.sample(sorted(items), 200)
    out = []
    for user in rng.sample(eligible, users):
        past, target = liked[user][:history], liked[user][history]
        others = pool if shared_pool else rng.sample(sorted(items), 200)
        fill = [i for i in others if i not in past and i != target][:n_candidates - 1]
        ids = [target, *fill]
        rng.shuffle(ids)
        out.append((
            [(Interaction(item_id=i, rating=5, ts=n), items[i]) for n, i in enumerate(past)],
            [Candidate(item=items[i], rank=r, score=0.0) for r, i in enumerate(ids)],
        ))
    return out


def run(ranker: Ranker, work: list[Case]) -> dict[str, Any]:
    seconds, tokens, asked = [], [], []
    for history, candidates in work:
        began = time.perf_counter()
        ranking = ranker.rank(history, candidates, 10)
        seconds.append(time.perf_counter() - began)
        tokens.append(ranking.invocation.usage.prompt_tokens)
        asked.append(json.loads(ranking.invocation.raw).get("neutral_asked", 0))
    return {"s_per_user": round(statistics.mean(seconds), 3),
            "s_per_user_max": round(max(seconds), 3),
            "prompt_tokens_per_user": round(statistics.mean(tokens), 1),
            "neutral_items_asked": sum(asked), "seconds": [round(s, 3) for s in seconds]}


@contextlib.contextmanager
def served(args: argparse.Namespace) -> Iterator[tuple[str, str, float]]:
    """(base URL, model name, server start seconds): the given server, or one started here."""
    if args.base_url:
        yield args.base_url, args.model or args.preset, 0.0
        return
    store = ArtifactStore(args.cache / "artifacts")
    store.cache_dir.mkdir(parents=True, exist_ok=True)
    folder = VLLMModelPreparer(store, args.cache / "vllm-models",
                               python=args.vllm_python).prepare(args.preset).folder
    with VLLMServer(python=args.vllm_python, model=str(folder), served_model_name=args.preset,
                    cpu_cores=usable_cores()) as server:
        yield server.base_url, server.model, server.startup_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="smollm2-135m")
    parser.add_argument("--base-url", help="a running OpenAI-compatible server (else start vLLM)")
    parser.add_argument("--model", help="the served model name with --base-url (default: preset)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/ml-100k")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--shared-pool", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-logprob", action="store_true")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache")
    parser.add_argument("--vllm-python", type=Path, default=REPO / ".venv-vllm/bin/python")
    args = parser.parse_args()
    work = cases(args.data, args.users, args.history, args.candidates, args.seed,
                 args.shared_pool)
    with served(args) as (base_url, model, startup_s):
        client = OpenAIClient(base_url=base_url, model=model, timeout_s=None, deadline_s=600)
        # one request first: a fresh vLLM on CPU spends seconds on its first batch
        client.continuation_logprobs("Warm-up:", [" a", " b"])
        ranker = LikelihoodRanker(client, PromptLibrary())
        out: dict[str, Any] = {"cold": run(ranker, work), "warm": run(ranker, work)}
        if args.compare_logprob:
            out["logprob_ranker"] = run(LogprobRanker(client, PromptLibrary()), work)
    print(json.dumps({"model": model, "server_start_s": round(startup_s, 1),
                      "users": args.users, "history": args.history,
                      "candidates": args.candidates, "shared_pool": args.shared_pool, **out},
                     indent=1))


if __name__ == "__main__":
    main()
