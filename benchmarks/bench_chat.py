"""Wall time of one chat turn (`ChatSession.send`, k=5, 20 candidates) per model preset.

A turn is: the model's reading of the message + rules + title lookups + filtered
retrieval + the model's ranking + checks. Fixed multi-turn conversations on MovieLens
100K; the first turn of the run is a warm-up and not counted. Needs the catalog in HOME:
    .venv/bin/recagent ingest --movielens ../shared/data/ml-100k --home HOME
    .venv/bin/python benchmarks/bench_chat.py --home HOME --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from recagent.chat.session import ChatSession
from recagent.wiring import LLMSpec, Settings, open_parts

CONVERSATIONS = (
    ("I loved Alien and Heat, something tense but no horror", "more like the second one",
     "I've seen that one", "nothing before 1990"),
    ("I liked Toy Story and Babe, something funny for the kids", "I've seen the first one",
     "after 1994"),
    ("I loved Star Wars and Blade Runner", "no comedy", "more like #3",
     "between 1980 and 1995"),
    ("I hated Titanic, give me a crime thriller", "I've seen Fargo", "nothing after 1995"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: its own)")
    parser.add_argument("--rounds", type=int, default=1, help="times through the conversations")
    parser.add_argument("--max-turns", type=int, default=0, help="stop after this many (0: all)")
    parser.add_argument("--no-extract", action="store_true",
                        help="rules only for reading messages (the model still ranks)")
    args = parser.parse_args()

    settings = Settings(home=args.home, llm=LLMSpec(preset=args.model, threads=args.threads))
    started = time.perf_counter()
    with open_parts(settings) as parts:
        startup = time.perf_counter() - started
        recommender, prompts = parts.recommender, parts.prompts
        reader = None if args.no_extract else parts.client
        ChatSession(recommender, reader, prompts, k=5).send(CONVERSATIONS[0][0])  # warm-up
        turns, ranking, degraded, extract_failed = [], [], 0, 0
        for _ in range(args.rounds):
            for script in CONVERSATIONS:
                chat = ChatSession(recommender, reader, prompts, k=5)
                for message in script:
                    if args.max_turns and len(turns) >= args.max_turns:
                        break
                    t0 = time.perf_counter()
                    turn = chat.send(message)
                    turns.append(time.perf_counter() - t0)
                    ranking.append(turn.trace.llm_latency_s if turn.trace else 0.0)
                    degraded += turn.degraded
                    extract_failed += any("could not read" in n for n in turn.notes)
    q = statistics.quantiles(turns, n=10)
    print(json.dumps({
        "model": args.model, "threads": args.threads, "extract": not args.no_extract,
        "turns": len(turns), "startup_s": round(startup, 1),
        "median_turn_s": round(statistics.median(turns), 2), "p90_turn_s": round(q[-1], 2),
        "median_ranking_llm_s": round(statistics.median(ranking), 2),
        "degraded": degraded, "extraction_failed": extract_failed,
    }))


if __name__ == "__main__":
    main()
