"""The plot of docs/scale.md from bench_scale.py's JSON: per-request latency (p50, p99) and
peak memory against the catalog's size, log-log.

    .venv/bin/python benchmarks/plot_scale.py docs/scale.json docs/scale.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    rows = [r for r in json.loads(Path(sys.argv[1]).read_text()) if "error" not in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    full = [r for r in rows if r["mode"] == "full"]
    index = [r for r in rows if r["mode"] == "index"]
    if full:
        sizes = [r["items"] for r in full]
        left.plot(sizes, [r["p50_ms"] for r in full], "o-", label="recommend p50 (full)")
        left.plot(sizes, [r["p99_ms"] for r in full], "o--", label="recommend p99 (full)")
    if index:
        sizes = [r["items"] for r in index]
        for key, name in (("text_query", "text query"), ("als_topk", "ALS top-k")):
            left.plot(sizes, [r[key]["p50_ms"] for r in index], "s-", label=f"{name} p50")
            left.plot(sizes, [r[key]["p99_ms"] for r in index], "s--", label=f"{name} p99")
    left.set(xscale="log", yscale="log", xlabel="items", ylabel="ms per request",
             title="latency (load ~20 on 2 cores)")
    left.legend(fontsize=7)
    right.plot([r["items"] for r in rows], [r["peak_rss_mib"] for r in rows], "o")
    right.set(xscale="log", yscale="log", xlabel="items", ylabel="peak RSS (MiB)",
              title="memory of one process")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
