"""Does a fitted fusion weighting beat the best single source on users it was not fitted on?

Uses the validation users of an eval config's fusion variants only (never an evaluated
user): re-runs the config into a scratch folder (with a warm response cache it makes no LLM
call), keeps the examples each fit saw, and for every fit with at least 40 users draws 200
random halves: the weights are chosen on one half and scored (NDCG@10) on the other,
against the single source that is best on that other half in hindsight, which is what an
eval report's "best baseline" is. Rules compared:

- grid:   the grid weighting with the best mean NDCG@10 (one plain search)
- single: the single source best on the fit half
- 1se:    the weighting with the fewest sources within one paired standard error of grid's
- bagged: grid's choice averaged over 25 bootstrap resamples of the fit half
          (`recagent.rank.ensemble.fit_weights`, what the harness uses)

    .venv/bin/python benchmarks/fusion_rules.py eval/configs/coldstart_ml100k.toml --home .cache
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import eval.harness
from eval.config import load_config
from recagent.cli.main import main as recagent_main
from recagent.rank.ensemble import LLM_SOURCE, fit_weights, grid_weightings, ndcg_by_weighting

RULES = ("grid", "single", "1se", "bagged")


def capture_fits(config: Path, home: Path) -> list[tuple[list[Any], list[str]]]:
    """The (examples, source names) of every fusion fit the config makes."""
    fits: list[tuple[list[Any], list[str]]] = []
    real = getattr(eval.harness, "fit_weights")  # noqa: B009 - patched where it is used

    def spy(examples: Any, names: Any, *args: Any, **kwargs: Any) -> Any:
        fits.append((list(examples), list(names)))
        return real(examples, names, *args, **kwargs)

    setattr(eval.harness, "fit_weights", spy)  # noqa: B010
    try:
        with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(sys.stderr):
            if recagent_main(["eval", str(config), "--home", str(home), "--out", out]):
                raise SystemExit("the eval run failed")
    finally:
        setattr(eval.harness, "fit_weights", real)  # noqa: B010
    return fits


def choose(examples: list[Any], names: list[str], seed: int) -> dict[str, np.ndarray]:
    """The weights each rule picks from these examples."""
    combos = grid_weightings(len(names))
    nd = ndcg_by_weighting(examples, names, combos)
    mean, sizes = nd.mean(0), (combos > 0).sum(1)
    best = int(np.argmax(mean))
    single = max(np.flatnonzero(sizes == 1), key=lambda i: mean[i])
    se = (nd[:, [best]] - nd).std(0, ddof=1) / np.sqrt(len(nd))
    one_se = min(np.flatnonzero(mean >= mean[best] - se), key=lambda i: (sizes[i], -mean[i]))
    bagged = fit_weights(examples, names, seed=seed)[0]
    return {"grid": combos[best], "single": combos[single], "1se": combos[one_se],
            "bagged": np.array([bagged[n] for n in names])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=200)
    args = parser.parse_args()

    cfg = load_config(args.config)
    labels = [f"{v.name}{f', fold {f}' if v.fit_folds else ''}, history {h}"
              for v in cfg.variants if v.fusion for f in range(v.fit_folds or 1)
              for h in cfg.protocol.history_lengths]  # the order the harness fits in
    print("| fit | users (target among candidates) |",
          " | ".join(f"{r}: mean Δ, share ≥ 0" for r in RULES), "|")
    print("|---|---|" + "---|" * len(RULES))
    for label, (examples, names) in zip(labels, capture_fits(args.config, args.home),
                                        strict=True):
        if len(examples) < 40:
            continue
        singles = np.eye(len(names))[[i for i, n in enumerate(names) if n != LLM_SOURCE]]
        rng = np.random.default_rng(0)
        deltas: dict[str, list[float]] = {r: [] for r in RULES}
        for split in range(args.splits):
            perm = rng.permutation(len(examples))
            fit = [examples[i] for i in perm[: len(perm) // 2]]
            held = [examples[i] for i in perm[len(perm) // 2:]]
            hindsight = ndcg_by_weighting(held, names, singles).mean(0).max()
            for rule, w in choose(fit, names, split).items():
                score = ndcg_by_weighting(held, names, w[None, :]).mean()
                deltas[rule].append(float(score - hindsight))
        informative = sum(target in ids for _, ids, target in examples)
        cells = " | ".join(f"{np.mean(d):+.4f}, {np.mean(np.array(d) >= -1e-12):.0%}"
                           for d in deltas.values())
        print(f"| {label} | {len(examples)} ({informative}) | {cells} |")


if __name__ == "__main__":
    main()
