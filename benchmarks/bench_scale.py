"""How cost grows with the catalog: synthetic catalogs, power-law interactions, and what
ingest, the retriever's training and a non-LLM recommendation cost at each size.

Two modes per size (sizes are item counts):

* full: items ingested into an embedded Chroma (`--embed-up-to`: MiniLM vectors computed
  up to that many items, seeded random unit vectors beyond), interactions (`--per-item`
  on average, item popularity Zipf-distributed, users with 5-100 interactions each) into
  the SQLite interactions store, the hybrid retriever built (ALS trained, sequential and
  popularity counted), then `--requests` non-LLM recommendations of sparse histories
  (1-5 items) through the product's Recommender: p50/p99, and the process's peak RSS;
* index: only the in-memory serving index (retrieval/memory_index.py) over random
  vectors, and ALS-sized random factors: the exact nearest-neighbour query and the ALS
  top-k, p50/p99, and RSS. What a catalog too large to ingest here would cost per request.

    .venv/bin/python benchmarks/bench_scale.py --work /tmp/scale --full 10000 \\
        --index 100000 1000000 --json > scale.json

Each size runs in a fresh process (so RSS is that size's), one after the other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

WORDS = ["space", "war", "love", "city", "night", "river", "ghost", "robot", "family",
         "crime", "music", "island", "king", "secret", "journey", "storm", "winter", "desert",
         "dragon", "school", "doctor", "heist", "ocean", "empire", "garden", "machine", "spy",
         "queen", "mountain", "forest", "train", "prison", "circus", "planet", "witch"]
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation"]


def rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def quantiles(times: Sequence[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=100)
    return {"p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}


class RandomEmbedder:
    """Seeded random unit vectors per text (the catalog's size, not its meaning)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    @property
    def name(self) -> str:
        return f"random-{self.dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
                 for t in texts]
        out = np.stack([np.random.default_rng(s).standard_normal(self.dim)
                        for s in seeds]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class MixedEmbedder:
    """MiniLM for the first `limit` items' texts, random vectors beyond."""

    def __init__(self, real: Any, limit: int, known: set[str]) -> None:
        self.real, self.limit, self.known = real, limit, known
        self.fake = RandomEmbedder()

    @property
    def name(self) -> str:
        return f"{self.real.name}+random"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        real = [n for n, t in enumerate(texts) if t in self.known]
        out = self.fake.embed(texts)
        if real:
            out[real] = self.real.embed([texts[n] for n in real])
        return out


def synthetic_items(n: int, seed: int) -> list[Any]:
    from retrieval.types import Item

    rng = random.Random(seed)
    items = []
    for i in range(n):
        genre = rng.choice(GENRES)
        words = " ".join(rng.choice(WORDS) for _ in range(8))
        title = f"Film {i} ({1950 + i % 70})"
        items.append(Item(id=str(i), title=title, text=f"{title}. Genres: {genre}. {words}.",
                          metadata={"title": f"Film {i}", "year": 1950 + i % 70,
                                    "genres": genre}))
    return items


def power_law_rows(n_items: int, per_item: int, seed: int) -> list[Any]:
    """~per_item interactions per item on average; item popularity ~ Zipf (rank^-1)."""
    from retrieval.interactions import InteractionRow

    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    weights /= weights.sum()
    total = n_items * per_item
    rows: list[Any] = []
    user, ts = 0, 0
    while len(rows) < total:
        size = int(rng.integers(5, 101))
        picked = np.unique(rng.choice(n_items, size=size, p=weights))
        for item in rng.permutation(picked):
            ts += 1
            rows.append(InteractionRow(user=f"u{user}", item=str(int(item)),
                                       rating=float(rng.integers(1, 6)), ts=ts))
        user += 1
    return rows[:total]


def full(size: int, args: argparse.Namespace) -> dict[str, Any]:
    from recagent.recommender import Recommender
    from recagent.types import UserHistory
    from recagent.wiring import (
        HybridSpec,
        RetrieverSpec,
        Settings,
        build_retriever,
        open_embedder,
        open_interactions,
        stored_rows,
    )
    from retrieval.store import CatalogStore

    home = args.work / f"full-{size}"
    settings = Settings(home=home, collection=f"scale{size}", ranker=None)
    (home / "artifacts").parent.mkdir(parents=True, exist_ok=True)
    if not (home / "artifacts").exists():
        (home / "artifacts").symlink_to(args.artifacts.resolve())
    items = synthetic_items(size, args.seed)
    embedded = {i.text for i in items[: args.embed_up_to]}
    embedder = MixedEmbedder(open_embedder(settings), args.embed_up_to, embedded)
    store = CatalogStore.open(embedder, path=home / "chroma", name=settings.collection)
    began = time.perf_counter()
    store.ingest(items, batch_size=512)
    ingest_items_s = time.perf_counter() - began

    rows = power_law_rows(size, args.per_item, args.seed)
    began = time.perf_counter()
    open_interactions(settings).ingest(settings.collection, rows)
    ingest_rows_s = time.perf_counter() - began

    began = time.perf_counter()
    stored = stored_rows(settings)
    weights = {name: 1.0 for name in args.sources}
    retriever = build_retriever(RetrieverSpec(kind="hybrid", hybrid=HybridSpec.model_validate(
        {"weights": weights})), store, stored)
    build_s = time.perf_counter() - began
    recommender = Recommender(store, retriever, None, n_candidates=20)

    rng = random.Random(args.seed)
    by_user: dict[str, list[str]] = {}
    for r in rows:
        by_user.setdefault(r.user, []).append(r.item)
    users = rng.sample(sorted(by_user), min(args.requests, len(by_user)))
    histories = [UserHistory.from_ids(list(dict.fromkeys(by_user[u]))[: rng.randint(1, 5)])
                 for u in users]
    recommender.recommend(histories[0], k=10)  # the image loads here: not counted
    times = []
    for h in histories:
        began = time.perf_counter()
        recommender.recommend(h, k=10)
        times.append(time.perf_counter() - began)
    return {"mode": "full", "items": size, "interactions": len(rows),
            "embedded_items": min(size, args.embed_up_to),
            "ingest_items_per_s": round(size / ingest_items_s, 1),
            "ingest_interactions_per_s": round(len(rows) / ingest_rows_s, 1),
            "retriever_build_s": round(build_s, 1), "sources": sorted(weights),
            "requests": len(times), **quantiles(times), "peak_rss_mib": rss_mib()}


def index(size: int, args: argparse.Namespace) -> dict[str, Any]:
    from retrieval.collaborative import top_rows
    from retrieval.memory_index import Image

    rng = np.random.default_rng(args.seed)
    began = time.perf_counter()
    vectors = rng.standard_normal((size, 384), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(i) for i in range(size)]
    image = Image("bench", ids, [f"Film {i}" for i in ids],
                  [{"title": f"Film {i}", "year": 1950 + i % 70} for i in range(size)], vectors)
    factors = rng.standard_normal((size, 32)).astype(np.float64)
    build_s = time.perf_counter() - began
    queries, als = [], []
    for n in range(args.requests):
        history = {str(int(i)) for i in rng.integers(0, size, 5)}
        began = time.perf_counter()
        hits = image.nearest(vectors[n % size], 100, history, None)
        [image.item(i) for i, _ in hits]
        queries.append(time.perf_counter() - began)
        began = time.perf_counter()
        scores = factors @ rng.standard_normal(32)
        scores[[int(i) for i in history]] = -np.inf
        top_rows(scores, 100, positive=False)
        als.append(time.perf_counter() - began)
    return {"mode": "index", "items": size, "build_s": round(build_s, 1),
            "requests": args.requests,
            "text_query": quantiles(queries), "als_topk": quantiles(als),
            "peak_rss_mib": rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder")
    parser.add_argument("--artifacts", type=Path, default=Path(".cache/artifacts"))
    parser.add_argument("--full", type=int, nargs="*", default=[10_000])
    parser.add_argument("--index", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--embed-up-to", type=int, default=100_000)
    parser.add_argument("--per-item", type=int, default=100)
    parser.add_argument("--sources", nargs="+", default=["semantic", "als", "sequential",
                                                         "popularity"])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    threadpool_limits(1, "blas")  # as the CLI runs it (OPENBLAS_NUM_THREADS=1, cli/main.py)
    if args.one:  # a child: one size, in its own process
        mode, size = args.one[0], int(args.one[1])
        print(json.dumps(full(size, args) if mode == "full" else index(size, args)))
        return
    results = []
    for mode, sizes in (("full", args.full), ("index", args.index)):
        for size in sizes:
            cmd = [sys.executable, *sys.argv, "--one", mode, str(size)]
            began = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                results.append({"mode": mode, "items": size, "error": done.stderr[-2000:]})
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["wall_s"] = round(time.perf_counter() - began, 1)
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
