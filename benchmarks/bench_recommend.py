"""Wall time of the product's `recommend` (20 candidates, k=10) per model preset, split
into the ranker's LLM call, the explanation call and the rest (retrieval, gate, our code);
also the CPU time of this process per request (what a busy shared machine cannot inflate
as much as wall time: the non-LLM path is all CPU).
With `recagent fit` run on HOME, the fitted pipeline is what is timed.

Histories are the first 1-5 liked movies (rating >= 4, by time) of seeded random
MovieLens 100K users, i.e. the new-user case. Needs the catalog ingested into HOME:
    .venv/bin/recagent ingest --movielens ../shared/data/ml-100k --home HOME
    .venv/bin/python benchmarks/bench_recommend.py --home HOME --model smollm2-135m -n 30
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

from threadpoolctl import threadpool_limits

from recagent.types import UserHistory
from recagent.wiring import LLMSpec, Settings, open_recommender


def liked_in_time(ratings: Path) -> dict[str, list[tuple[int, str]]]:
    """Each user's liked (rating >= 4) items of an ML-100K u.data file, as (time, item)."""
    liked: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line in ratings.read_text().splitlines():
        user, item, rating, ts = line.split("\t")
        if int(rating) >= 4:
            liked[user].append((int(ts), item))
    return liked


def sparse_histories(ratings: Path, n: int, seed: int) -> list[UserHistory]:
    liked = liked_in_time(ratings)
    rng = random.Random(seed)
    users = sorted(liked, key=int)
    out = []
    for user in rng.sample(users, n):
        size = rng.randint(1, 5)
        ids = [item for _, item in sorted(liked[user])[:size]]
        out.append(UserHistory.from_ids(ids, user_id=user))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k/u.data"))
    parser.add_argument("-n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-llm", action="store_true", help="no LLM at all (templates)")
    args = parser.parse_args()

    threadpool_limits(1, "blas")  # as the CLI runs it (OPENBLAS_NUM_THREADS=1, cli/main.py)
    histories = sparse_histories(args.data, args.n, args.seed)
    started = time.perf_counter()
    settings = Settings(home=args.home, llm=LLMSpec(preset=args.model))
    if args.no_llm:
        settings = settings.model_copy(update={"ranker": None})
    with open_recommender(settings) as recommender:
        startup = time.perf_counter() - started
        recommender.recommend(histories[0], k=10)  # warm-up, not counted
        times, completion, ranking, explaining, worded = [], [], [], [], []
        cpu: list[float] = []
        for history in histories:
            began = time.process_time()
            rec = recommender.recommend(history, k=10)
            cpu.append(time.process_time() - began)
            times.append(rec.trace.latency_s)
            completion.append(rec.trace.usage.completion_tokens)
            ranking.append(rec.trace.llm_latency_s)
            call = rec.trace.explain_call
            explaining.append(call.latency_s if call else 0.0)
            worded.append(rec.trace.explanation_counts.llm)
        stats = recommender.stats
    q = statistics.quantiles(times, n=100)
    print(json.dumps({
        "model": None if args.no_llm else args.model, "requests": len(times),
        "startup_s": round(startup, 1),
        "median_s": round(statistics.median(times), 4), "p90_s": round(q[89], 4),
        "p99_s": round(q[98], 4),
        "median_cpu_s": round(statistics.median(cpu), 4),
        "p99_cpu_s": round(statistics.quantiles(cpu, n=100)[98], 4),
        "median_rank_llm_s": round(statistics.median(ranking), 2),
        "median_explain_llm_s": round(statistics.median(explaining), 2),
        "median_rest_s": round(statistics.median(
            t - r - e for t, r, e in zip(times, ranking, explaining, strict=True)), 3),
        "llm_worded_share": round(sum(worded) / (10 * len(times)), 3),
        "mean_completion_tokens": round(statistics.mean(completion), 1),
        "degraded": stats.degraded, "repaired": stats.repaired, "reasked": stats.reasked,
    }))


if __name__ == "__main__":
    main()
