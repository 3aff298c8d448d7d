"""Choose the hybrid retriever's RRF weights on validation cases (never the test targets).

Validation cases: eval.protocols.validation_split — leave-one-out again inside the
leave-one-out training data (each user's last positive *training* interaction is the
target), sources trained on what precedes those targets only. Each source is asked for
`depth` items once per case; every weight combination of the grid is then scored by
recall@20 of the fusion (eval.protocols.fit_rrf_weights, the same RRF as the retriever).

usage: .venv/bin/python tune_fusion.py eval/configs/retrieval_ml100k.toml --home .cache
         [--users N]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from eval.config import load_config
from eval.harness import load_dataset
from eval.protocols import (
    FULL,
    fit_rrf_weights,
    leave_one_out,
    retrieval_history,
    sample_users,
    validation_split,
)
from recagent.wiring import Settings, open_store
from retrieval.als import ALSRetriever
from retrieval.collaborative import (
    CoOccurrenceRetriever,
    PopularityRetriever,
    RecencyKNNRetriever,
)
from retrieval.semantic import SemanticRetriever
from retrieval.sequential import SequentialRetriever

GRID = {  # sequential is the reference (weights are only relative); smallest values first
    "semantic": [0.1, 0.25, 0.5],
    "sequential": [1.0],
    "als": [0.0, 0.25, 0.5, 1.0, 2.0],
    "recency_knn": [0.0, 0.25, 0.5, 1.0],
    "cooccurrence": [0.0, 0.25, 0.5],
    "popularity": [0.0, 0.1, 0.25],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", type=Path)
    ap.add_argument("--home", type=Path, default=Path(".cache"))
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_config(args.config)
    proto, hybrid = cfg.protocol, cfg.protocol.hybrid_or_default
    ds = load_dataset(cfg.dataset)
    store = open_store(Settings(home=args.home), collection=f"eval-{ds.name}")
    store.ingest(list(ds.items.values()), progress=True)
    loo = leave_one_out(ds, threshold=cfg.dataset.positive_threshold,
                        positive_history=cfg.dataset.history == "positive", seed=cfg.seed)
    val = validation_split(loo, threshold=cfg.dataset.positive_threshold, seed=cfg.seed)
    rows = [(r.user, r.item, r.rating, r.ts) for r in val.train]
    t = time.time()
    sources = {  # the wiring's order (ties favour the earlier source)
        "semantic": SemanticRetriever(store),
        "sequential": SequentialRetriever(store, rows),
        "als": ALSRetriever(store, rows, collection=f"eval-{ds.name}-als-validation"),
        "recency_knn": RecencyKNNRetriever(store, rows),
        "cooccurrence": CoOccurrenceRetriever(store, rows),
        "popularity": PopularityRetriever(store, rows),
    }
    print(f"sources trained on {len(rows)} validation-training rows in {time.time() - t:.1f} s")
    chosen = set(sample_users([s.user for s in val.splits], args.users, cfg.seed))
    splits = [s for s in val.splits if s.user in chosen]
    cases = []
    for split in tqdm(splits, desc="validation retrieval", unit="user"):
        history = retrieval_history(split, FULL, proto.max_history)
        lists = {name: [c.item.id for c in src.retrieve(history, hybrid.depth)]
                 for name, src in sources.items()}
        cases.append((lists, split.target))
    alone = {name: sum(target in lists[name][:20] for lists, target in cases) / len(cases)
             for name in sources}
    fit = fit_rrf_weights(cases, GRID, k_rrf=hybrid.k_rrf, n=proto.n_candidates)
    report = {"config": str(args.config), "validation_cases": len(cases),
              "validation_users_of": len(val.splits), "recall@20_alone": alone,
              "chosen": fit.weights, "chosen_recall@20": fit.recall,
              "top": [{"weights": w, "recall@20": r} for w, r in fit.table[:15]],
              "grid": GRID}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
