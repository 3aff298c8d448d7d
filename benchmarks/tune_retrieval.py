"""Choose the hybrid retriever's RRF weights on validation users, with the product's own fit.

The one RRF-fitting code path: `recagent.wiring.fit_product` (what `recagent fit` runs),
on the config's leave-one-out training interactions (never a test target). It holds out
its own validation users inside them (every user the data allows, as the product does
without an LLM), cut like the config's test (`protocol.cut = "strict"`: strictly before
the target's second), considers every source alone and coordinate ascent from the best
start, and prints what it chose with each source's validation recall alone.

usage: .venv/bin/python benchmarks/tune_retrieval.py eval/configs/retrieval_ml100k.toml \
         --home .cache [--users N] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eval.config import load_config
from eval.harness import load_dataset
from eval.protocols import leave_one_out
from recagent.wiring import Settings, fit_product, open_store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", type=Path)
    ap.add_argument("--home", type=Path, default=Path(".cache"))
    ap.add_argument("--users", type=int, default=None,
                    help="validation users (default: every user the data allows)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_config(args.config)
    ds = load_dataset(cfg.dataset)
    store = open_store(Settings(home=args.home), collection=f"eval-{ds.name}")
    store.ingest(list(ds.items.values()), progress=True)
    loo = leave_one_out(ds, threshold=cfg.positive_threshold,
                        positive_history=cfg.dataset.history == "positive", seed=cfg.seed,
                        strict=cfg.protocol.cut == "strict")
    rows = [(r.user, r.item, r.rating, r.ts) for r in loo.train]
    start = time.time()
    fitted = fit_product(store, rows, collection=store.collection.name, ranker=None,
                         llm_model=None, n=cfg.protocol.n_candidates, n_users=args.users,
                         seed=cfg.seed, strict=cfg.protocol.cut == "strict", progress=print)
    report = {"config": str(args.config), "seconds": round(time.time() - start, 1),
              **fitted.model_dump(mode="json")}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
