"""Rating prediction: a few rated examples in, held-out ratings out; RMSE and MAE against
global-, user-, item-mean and bias baselines.

The LLM rates all held-out items of a user in one structured call (cached, resumable
like the ranking runs). A user whose answer cannot be used gets the scale midpoint for
every item and is counted as failed: never dropped, never given a baseline's guess.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy.stats import ttest_rel
from tqdm import tqdm

from eval.config import EvalConfig, VariantConfig
from eval.datasets import Dataset, Rating
from eval.protocols import RatingCase, rating_split, sample_users
from eval.results import ResultLog
from recagent.llm.cache import CachingClient
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.rating import RatingPredictor
from recagent.types import Item

SCALE_MAX = 5
MIDPOINT = (1 + SCALE_MAX) / 2


class RatingResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str
    user: str
    predicted: dict[str, float]
    actual: dict[str, float]
    failed: bool = False
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_s: float = 0.0


class Predictor(Protocol):
    name: str

    def predict(self, case: RatingCase) -> dict[str, float]: ...


def _rated(ratings: Sequence[Rating]) -> list[float]:
    return [r.rating for r in ratings if r.rating is not None]


class GlobalMean:
    name = "global_mean"

    def __init__(self, train: Sequence[Rating]) -> None:
        self.mean = statistics.fmean(_rated(train))

    def predict(self, case: RatingCase) -> dict[str, float]:
        return {r.item: self.mean for r in case.held_out}


class UserMean:
    """The mean of the examples the user showed (the same ones the LLM sees)."""

    name = "user_mean"

    def predict(self, case: RatingCase) -> dict[str, float]:
        mean = statistics.fmean(_rated(case.examples))
        return {r.item: mean for r in case.held_out}


class ItemMean:
    """The item's mean training rating; the global mean for items nobody rated."""

    name = "item_mean"

    def __init__(self, train: Sequence[Rating]) -> None:
        self.global_mean = statistics.fmean(_rated(train))
        sums: dict[str, list[float]] = {}
        for r in train:
            if r.rating is not None:
                sums.setdefault(r.item, []).append(r.rating)
        self.means = {i: statistics.fmean(v) for i, v in sums.items()}

    def predict(self, case: RatingCase) -> dict[str, float]:
        return {r.item: self.means.get(r.item, self.global_mean) for r in case.held_out}


class BiasBaseline:
    """Global mean + shrunk item bias + shrunk user bias from the examples (Koren's
    baseline predictor), clipped to the scale."""

    name = "bias"

    def __init__(self, train: Sequence[Rating], *, shrink: float = 10.0) -> None:
        self.mu = statistics.fmean(_rated(train))
        self.shrink = shrink
        deltas: dict[str, list[float]] = {}
        for r in train:
            if r.rating is not None:
                deltas.setdefault(r.item, []).append(r.rating - self.mu)
        self.item_bias = {i: sum(d) / (len(d) + shrink) for i, d in deltas.items()}

    def predict(self, case: RatingCase) -> dict[str, float]:
        residuals = [r.rating - self.mu - self.item_bias.get(r.item, 0.0)
                     for r in case.examples if r.rating is not None]
        user_bias = sum(residuals) / (len(residuals) + self.shrink)
        return {r.item: float(np.clip(self.mu + user_bias + self.item_bias.get(r.item, 0.0),
                                      1, SCALE_MAX)) for r in case.held_out}


class LLMRater:
    """One structured call per user; unusable answers become a counted failure."""

    def __init__(self, client: LLMClient, prompts: PromptLibrary, variant: VariantConfig,
                 items: dict[str, Item], *, seed: int) -> None:
        self.variant, self.items = variant, items
        self.predictor = RatingPredictor(client, prompts, template=variant.template or "rate",
                                         scale_max=SCALE_MAX, temperature=variant.temperature,
                                         seed=seed)

    def rate(self, case: RatingCase) -> RatingResult:
        actual = {r.item: float(r.rating or 0) for r in case.held_out}
        fallback = {i: MIDPOINT for i in actual}
        base: dict[str, Any] = {"run": self.variant.name, "user": case.user, "actual": actual}
        try:
            done = self.predictor.predict(
                [(self.items[r.item], r.rating) for r in case.examples if r.rating is not None],
                [self.items[r.item] for r in case.held_out])
        except Exception as e:  # a failed user is counted, never dropped
            return RatingResult(**base, predicted=fallback, failed=True,
                                error=f"{type(e).__name__}: {e}")
        missing = len(done.missing)
        return RatingResult(
            **base, predicted={**fallback, **done.ratings}, failed=missing > 0,
            error=f"{missing} item(s) not rated" if missing else None,
            prompt_tokens=done.usage.prompt_tokens,
            completion_tokens=done.usage.completion_tokens, llm_s=done.latency_s)


def _scores(results: Sequence[RatingResult]) -> dict[str, float]:
    errors = np.array([r.predicted[i] - a for r in results for i, a in r.actual.items()])
    return {"users": len(results), "rmse": float(np.sqrt(np.mean(errors**2))),
            "mae": float(np.mean(np.abs(errors))), "failed": sum(r.failed for r in results)}


def _user_sq_error(results: Sequence[RatingResult]) -> dict[str, float]:
    return {r.user: float(np.mean([(r.predicted[i] - a) ** 2 for i, a in r.actual.items()]))
            for r in results}


def evaluate_rating(
    config: EvalConfig, dataset: Dataset, client: LLMClient | None, *, out: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Baselines on every user, LLM variants on the seeded sample; returns the summary."""
    proto = config.protocol
    split = rating_split(dataset, n_examples=proto.n_examples, n_held_out=proto.n_held_out)
    users = sample_users([c.user for c in split.cases], config.users.baseline_sample, config.seed)
    cases = [c for c in split.cases if c.user in set(users)]
    predictors: list[Predictor] = [GlobalMean(split.train), UserMean(), ItemMean(split.train),
                                   BiasBaseline(split.train)]
    results: dict[str, list[RatingResult]] = {
        p.name: [RatingResult(run=p.name, user=c.user, predicted=p.predict(c),
                              actual={r.item: float(r.rating or 0) for r in c.held_out})
                 for c in cases]
        for p in predictors
    }
    sample = set(sample_users(users, config.users.llm_sample, config.seed))
    throughput: dict[str, dict[str, float]] = {}
    if config.variants:
        if client is None:
            raise ValueError("LLM variants need a client")
        cache_path = config.llm.cache or out / "state" / "llm_cache.sqlite"
        with CachingClient(client, cache_path) as cached:
            for variant in config.variants:
                rater = LLMRater(cached, PromptLibrary(), variant, dataset.items,
                                 seed=config.seed)
                key = config.fingerprint(variant.identity(), cached.model)
                log = ResultLog(out / "state" / f"{variant.name}-{key}.jsonl", RatingResult)
                done = {r.user: r for r in log.read()}
                todo = [c for c in cases if c.user in sample and c.user not in done]
                start, calls = time.perf_counter(), cached.stats.misses
                with tqdm(total=len(todo), desc=variant.name, unit="user",
                          disable=not progress) as bar:
                    for result in _map(rater, todo, config.llm.concurrency):
                        log.append(result)
                        done[result.user] = result
                        bar.update()
                elapsed = time.perf_counter() - start
                throughput[variant.name] = {
                    "users": len(todo), "elapsed_s": elapsed,
                    "llm_calls": cached.stats.misses - calls,
                    "users_per_s": len(todo) / elapsed if elapsed else 0.0}
                results[variant.name] = [done[c.user] for c in cases if c.user in sample]
    return _summary(config, dataset, results, sample, throughput,
                    client.model if config.variants and client else None)


def _map(rater: LLMRater, cases: Sequence[RatingCase], workers: int) -> Iterator[RatingResult]:
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in as_completed([pool.submit(rater.rate, c) for c in cases]):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _summary(config: EvalConfig, dataset: Dataset, results: dict[str, list[RatingResult]],
             sample: set[str], throughput: dict[str, dict[str, float]],
             llm_model: str | None) -> dict[str, Any]:
    variants = [v.name for v in config.variants if v.name in results]
    baselines = [n for n in results if n not in variants]
    populations: dict[str, Any] = {"all": {n: _scores(results[n]) for n in baselines}}
    if variants:
        rows = {n: _scores([r for r in results[n] if r.user in sample])
                for n in [*baselines, *variants]}
        reference = min(baselines, key=lambda b: rows[b]["rmse"])
        ref = _user_sq_error([r for r in results[reference] if r.user in sample])
        significance = {}
        for v in variants:
            mine = _user_sq_error(results[v])
            users = sorted(mine)
            test = ttest_rel([mine[u] for u in users], [ref[u] for u in users])
            significance[v] = {"p": float(test.pvalue), "reference": reference,
                               "delta_mse": rows[v]["rmse"] ** 2 - rows[reference]["rmse"] ** 2}
        populations["llm_sample"] = {"rows": rows, "significance": significance}
    cost = {v: {"prompt_tokens_per_user": statistics.fmean(r.prompt_tokens for r in results[v]),
                "completion_tokens_per_user":
                    statistics.fmean(r.completion_tokens for r in results[v]),
                "llm_s_per_user": statistics.fmean(r.llm_s for r in results[v])}
            for v in variants if results[v]}
    return {"name": config.name, "seed": config.seed, "dataset": dataset.name,
            "llm_model": llm_model,
            "notes": [*dataset.notes,
                      f"{config.protocol.n_held_out} latest ratings per user are predicted from "
                      f"the {config.protocol.n_examples} before them; a failed LLM answer "
                      f"predicts {MIDPOINT:g} for each item and is counted."],
            "protocol": config.protocol.model_dump(mode="json"),
            "populations": populations, "cost": cost, "throughput": throughput}


def write_rating_report(summary: dict[str, Any], out: Path, config_text: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "config.toml", out / "metrics.json", out / "metrics.md"]
    paths[0].write_text(config_text, encoding="utf-8")
    paths[1].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    model = [f"LLM: **{summary['llm_model']}**.", ""] if summary["llm_model"] else []
    lines = [f"# {summary['name']}", "", *model, *(f"- {n}" for n in summary["notes"]), ""]
    all_rows = summary["populations"]["all"]
    sample = summary["populations"].get("llm_sample")
    for title, rows in [("All users", all_rows)] + (
            [("LLM sample", sample["rows"])] if sample else []):
        lines += [f"## {title}", "", "| run | users | RMSE | MAE | failed | p vs best baseline |",
                  "|---|---|---|---|---|---|"]
        for name, row in rows.items():
            sig = sample["significance"].get(name) if sample and title != "All users" else None
            p = f"{sig['p']:.3g} (vs {sig['reference']})" if sig else ""
            lines.append(f"| {name} | {row['users']} | {row['rmse']:.4f} | {row['mae']:.4f} | "
                         f"{row['failed']} | {p} |")
        lines.append("")
    for v, c in summary["cost"].items():
        speed = summary["throughput"].get(v, {})
        lines.append(f"- {v}: {c['prompt_tokens_per_user']:.0f} prompt + "
                     f"{c['completion_tokens_per_user']:.0f} completion tokens/user, "
                     f"{c['llm_s_per_user']:.2f} s LLM/user"
                     + (f", {speed['users_per_s']:.3f} users/s" if speed.get("users") else ""))
    paths[2].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
