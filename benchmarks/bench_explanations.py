"""How often the LLM's explanation sentences pass the checker, per model preset.

The product's `recommend` with the LLM wording every item of a 10-item list (the product
itself words only the top one, for speed), for new users with 1-5 liked movies (the
histories of benchmarks/bench_recommend.py). Prints, as JSON: sentences asked, passed,
replaced (by failure kind), the LLM-written pass rate, and how many returned explanations
fail a re-check by the same checker (the product must ship none). Needs a HOME with the
catalog ingested and, for the product's ranking without an LLM, fitted without one:
    .venv/bin/recagent ingest --movielens ../shared/data/ml-100k --home HOME
    .venv/bin/recagent fit --no-llm --home HOME
    .venv/bin/python benchmarks/bench_explanations.py --home HOME --model smollm2-135m -n 200
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from bench_recommend import sparse_histories
from tqdm import tqdm

from recagent.explain.checker import Checker
from recagent.types import Item, Recommendation
from recagent.wiring import LLMSpec, Settings, open_parts

K = 10


def recheck(checker: Checker, rec: Recommendation, history: list[Item]) -> int:
    """Returned explanations the checker refuses when asked again (0 is the promise)."""
    titles = [i.title for i in rec.items]
    genres = {g for i in rec.items if i.evidence for g in i.evidence.genres}
    failing, shipped = 0, []
    for item in rec.items:
        if item.evidence is None or checker.check(item.explanation, item.evidence, history,
                                                  earlier=shipped, titles=titles, genres=genres):
            failing += 1
        shipped.append(item.explanation)
    return failing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k/u.data"))
    parser.add_argument("-n", type=int, default=200, help="users (one request each)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    histories = sparse_histories(args.data, args.n, args.seed)
    settings = Settings(home=args.home, llm=LLMSpec(preset=args.model), llm_explained=K)
    kinds: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    refused, degraded, started = 0, 0, time.perf_counter()
    with open_parts(settings) as parts:
        recommender = parts.recommender
        for history in tqdm(histories, desc=args.model, unit="user"):
            rec = recommender.recommend(history, k=K)
            degraded += rec.degraded
            for record in rec.trace.explanations:
                kinds[record.kind] += 1
                failures.update(f.kind for f in record.failures)
            items = parts.store.get([i.item_id for i in history.interactions])
            refused += recheck(recommender.explainer.checker, rec, list(items.values()))
    asked = kinds["llm"] + kinds["replaced"]
    print(json.dumps({
        "model": args.model, "users": len(histories), "items": sum(kinds.values()),
        "llm_asked": asked, "llm_passed": kinds["llm"], "replaced": kinds["replaced"],
        "llm_pass_rate": round(kinds["llm"] / asked, 3) if asked else None,
        "replaced_by_kind": dict(failures.most_common()),
        "returned_failing_recheck": refused, "degraded": degraded,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
