"""Users per minute of listwise generation against single-pass logprob ranking.

Same model, same sparse histories (1-5 liked MovieLens 100K movies), same 20 retrieved
candidates per user, no response cache; each ranker with and without reasons. Needs the
catalog ingested into HOME:
    .venv/bin/recagent ingest --movielens ../shared/data/ml-100k --home HOME
    .venv/bin/python benchmarks/bench_rankers.py --home HOME --model smollm2-135m -n 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench_recommend import sparse_histories

from recagent.rank.factory import RankerSpec, build_ranker
from recagent.recommender import Recommender
from recagent.wiring import LLMSpec, Settings, open_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k/u.data"))
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    settings = Settings(home=args.home, llm=LLMSpec(preset=args.model, threads=args.threads))
    histories = sparse_histories(args.data, args.n, args.seed)
    specs = {
        "listwise": RankerSpec(explain=False),
        "listwise+reasons": RankerSpec(explain=True),
        "logprob": RankerSpec(method="logprob", explain=False),
        "logprob+reasons": RankerSpec(method="logprob", explain=True),
    }
    with open_parts(settings) as parts:
        assert parts.client is not None
        for name, spec in specs.items():
            ranker = build_ranker(spec, parts.client, parts.prompts)
            recommender = Recommender(parts.store, parts.recommender.retriever, ranker)
            recommender.recommend(histories[0], k=10)  # warm-up, not counted
            times, completion = [], []
            started = time.perf_counter()
            for history in histories:
                rec = recommender.recommend(history, k=10)
                times.append(rec.trace.latency_s)
                completion.append(rec.trace.usage.completion_tokens)
            elapsed = time.perf_counter() - started
            print(json.dumps({
                "ranker": name, "model": args.model, "users": len(times),
                "users_per_min": round(60 * len(times) / elapsed, 1),
                "median_s": round(statistics.median(times), 2),
                "mean_completion_tokens": round(statistics.mean(completion), 1),
                "degraded": recommender.stats.degraded,
            }), flush=True)


if __name__ == "__main__":
    main()
