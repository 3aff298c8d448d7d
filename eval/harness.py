"""Variants x users → results: the cases, the baselines, and the LLM runs, resumably.

LLM variants go through the public `Recommender.recommend(history, k, candidates=...)`
with a ListwiseRanker over a cached client, a bounded number of requests in flight, and
every finished user appended to a result log at once: stop it any time and run it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tqdm import tqdm

from eval import product
from eval.baseline_rows import RETRIEVAL_SUFFIX, InputView, build_scorers, training_rows
from eval.baselines import Scorer
from eval.config import DatasetConfig, EvalConfig, VariantConfig
from eval.datasets import Dataset, load_interactions, load_ml1m, load_ml100k
from eval.fusion import folds, validation_users
from eval.item_coldstart import cold_items, cold_split
from eval.per_user import baseline_result, case_llm_scores, llm_result, skipped_result
from eval.protocols import (
    Case,
    LeaveOneOut,
    leave_one_out,
    llmrank_cases,
    pipeline_retrieval,
    sample_users,
)
from eval.results import ResultLog, UserResult
from eval.temporal import temporal_split
from eval.variants import demonstrations
from recagent.errors import ConfigError
from recagent.fit import FittedConfig
from recagent.llm.cache import CacheStats, CachingClient
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.ensemble import LLM_SOURCE, FusionRanker, fit_weights
from recagent.rank.factory import build_ranker
from recagent.rank.listwise import Ranker
from recagent.recommender import Recommender
from recagent.types import Item
from recagent.wiring import HybridSpec, RetrieverSpec, build_retriever
from retrieval.hybrid import HybridRetriever
from retrieval.store import CatalogStore
from retrieval.types import Retriever


@dataclass(frozen=True)
class Session:
    """One invocation's work on one LLM variant: what throughput is computed from."""

    run: str
    elapsed_s: float
    users: int
    llm_calls: int
    cache_hits: int


@dataclass
class EvalResult:
    config: EvalConfig
    dataset: Dataset
    loo: LeaveOneOut
    cases: dict[int, list[Case]]
    """Setting (history length, 0 = full) → one case per evaluated user."""
    llm_users: list[str]
    retrieval: dict[int, dict[str, dict[str, tuple[str, ...]]]] = field(default_factory=dict)
    """Pipeline: setting → retrieval source (and 'fusion') → user → its top ids, for recall."""
    results: dict[str, dict[int, list[UserResult]]] = field(default_factory=dict)
    """Run (baseline or variant name) → setting → results."""
    sessions: list[Session] = field(default_factory=list)
    cache: CacheStats | None = None
    llm_model: str | None = None
    """The model that answered the variants (None: no variant ran)."""
    fusion_weights: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """Fusion variant → setting → the fitted weight of each source."""
    product_fit: FittedConfig | None = None
    """The `product` row's fit on the training split (eval.product)."""
    extra_runs: list[str] = field(default_factory=list)
    """Rows of the `extra_scorers` a harness was given (the item cold start rankers), and
    the baselines' own-retrieval rows."""
    training: dict[str, dict[str, object]] = field(default_factory=dict)
    """Trained baselines (SASRec, GRU4Rec) → epochs, best epoch, seconds, settings."""

    @property
    def baselines(self) -> list[str]:
        """The rows that need no LLM: the baselines, then the product (fitted without it)."""
        return [b for b in [*self.config.baselines.include, *self.extra_runs, product.RUN]
                if b in self.results]

    @property
    def variants(self) -> list[str]:
        return [v.name for v in self.config.variants if v.name in self.results]


def load_dataset(config: DatasetConfig) -> Dataset:
    if config.kind == "ml-100k":
        return load_ml100k(config.path)
    if config.kind == "ml-1m":
        return load_ml1m(config.path, config.ratings, partial=config.partial)
    assert config.ratings is not None  # the config validator guarantees it
    return load_interactions(config.ratings, config.path)


class Harness:
    """Runs one config over a data set. The catalog store and the LLM client are given,
    not made here: the caller owns their lifetimes (see eval.evaluate)."""

    def __init__(
        self, config: EvalConfig, *, dataset: Dataset, store: CatalogStore, out: Path,
        progress: bool = True,
        extra_scorers: Callable[[EvalResult], Sequence[Scorer]] | None = None,
        models: Path | None = None,
    ) -> None:
        """`extra_scorers`: more rows without an LLM, built from the prepared result (its
        training split), run after the configured baselines. `models`: where trained
        sequential baselines are kept, by their training rows (default: the report's state)."""
        if config.protocol.kind == "rating":
            raise ConfigError("the rating protocol is run by eval.rating, not the ranking harness")
        self.config = config
        self.dataset = dataset
        self.store = store
        self.out = out
        self.progress = progress
        self.extra_scorers = extra_scorers
        self.models = models or out / "state" / "models"
        self.scorers: dict[str, Scorer] = {}
        """The fitted baselines, whose scores fusion variants reuse."""

    def run(self, client: LLMClient | None) -> EvalResult:
        """Baselines always; LLM variants when the config has any (then `client` is needed)."""
        result = self.prepare()
        self.baselines(result)
        if self.config.variants:
            if client is None:
                raise ConfigError("the config has LLM variants but no LLM client was given")
            self.variants(result, client)
        return result

    # ---- building the cases ----------------------------------------------------------

    def prepare(self) -> EvalResult:
        """Ingest the catalog (idempotent: only the first run pays), split, build cases."""
        cfg, dataset = self.config, self.dataset
        self.store.ingest(list(dataset.items.values()), progress=self.progress)
        positive_history = cfg.dataset.history == "positive"
        if cfg.protocol.cut == "global":
            loo = temporal_split(dataset, threshold=cfg.positive_threshold, seed=cfg.seed,
                                 positive_history=positive_history,
                                 quantile=cfg.protocol.split_quantile)
        else:
            loo = leave_one_out(dataset, threshold=cfg.positive_threshold, seed=cfg.seed,
                                positive_history=positive_history,
                                strict=cfg.protocol.cut == "strict")
        pool = dataset.rated_items()
        if cfg.item_coldstart is not None:  # cold targets, cold negatives, warm training
            cold = cold_items(dataset, cfg.item_coldstart.cold_share)
            loo, pool = cold_split(loo, cold, n_negatives=cfg.protocol.n_negatives), list(cold.pool)
        users = sample_users([s.user for s in loo.splits], cfg.users.baseline_sample, cfg.seed)
        chosen = set(users)
        splits = [s for s in loo.splits if s.user in chosen]
        llm_users = sample_users(users, cfg.users.llm_sample, cfg.seed) if cfg.variants else []
        cases: dict[int, list[Case]] = {}
        rankings: dict[int, dict[str, dict[str, tuple[str, ...]]]] = {}
        proto = cfg.protocol
        # collaborative sources learn from these only: (user, item, rating, ts), in the
        # protocol's time order (ties at one timestamp in its seeded order)
        rows = [(r.user, r.item, r.rating, r.ts) for r in loo.train]
        fitted = (product.fit(cfg, self.store, rows, self.out, progress=self.progress,
                              cache=self.models)
                  if cfg.product else None)
        retriever: Retriever | None = None
        if proto.kind == "pipeline":
            retriever = (product.retriever(fitted, self.store, rows) if fitted else
                         build_retriever(proto.retriever_spec, self.store, rows))
        # hybrid sources with weight 0 take no part in the fusion; their recall is still
        # reported beside the others' (a comparison row), so they are built apart
        weights = (fitted.retrieval_weights if fitted else proto.hybrid_or_default.weights)
        unfused = [n for n, w in weights.items() if w == 0]
        measured: dict[str, Retriever] = {}
        if isinstance(retriever, HybridRetriever) and unfused:
            alone = build_retriever(RetrieverSpec(kind="hybrid", hybrid=HybridSpec.model_validate(
                {"weights": {"semantic": 1.0, **dict.fromkeys(unfused, 1.0)}})), self.store, rows)
            assert isinstance(alone, HybridRetriever)
            measured = {n: alone.sources[n] for n in unfused}
        for setting in proto.settings:
            if retriever is None:
                cases[setting] = llmrank_cases(
                    splits, pool, setting=setting,
                    n_negatives=proto.n_negatives, max_history=proto.max_history, seed=cfg.seed,
                    exclude_seen=proto.conventions == "ours")
                if fitted:  # the product orders them as its retrieval would
                    assert cfg.product is not None
                    deep = product.retriever(fitted, self.store, rows, depth=cfg.product.depth)
                    by_user = {s.user: s for s in splits}
                    cases[setting] = [product.scored_candidates(
                        c, by_user[c.user], deep, dataset.items, proto.max_history,
                        cfg.product.depth)
                        for c in tqdm(cases[setting], desc="product retrieval", unit="user",
                                      disable=not self.progress)]
                continue
            cases[setting], rankings[setting] = [], {}
            for s in tqdm(splits, desc=f"retrieving (history {setting or 'full'})",
                          unit="user", disable=not self.progress):
                case, by_source = pipeline_retrieval(
                    s, retriever, setting=setting, n_candidates=proto.n_candidates,
                    max_history=proto.max_history, measured=measured)
                cases[setting].append(case)
                for source, ids in by_source.items():
                    rankings[setting].setdefault(source, {})[s.user] = ids
        return EvalResult(config=cfg, dataset=dataset, loo=loo, cases=cases,
                          llm_users=llm_users, retrieval=rankings, product_fit=fitted)

    # ---- baselines ---------------------------------------------------------------------

    def baselines(self, result: EvalResult) -> None:
        for scorer in self._scorers(result):
            self.scorers[scorer.name] = scorer
            per_setting: dict[int, list[UserResult]] = {}
            for setting, cases in result.cases.items():
                per_setting[setting] = [
                    baseline_result(scorer, c)
                    for c in tqdm(cases, desc=f"{scorer.name} (history {setting or 'full'})",
                                  unit="user", disable=not self.progress, leave=False)
                ]
            result.results[scorer.name] = per_setting
            if scorer.name not in self.config.baselines.include:
                result.extra_runs.append(scorer.name)
            if self.config.baselines.retrieval_rows and isinstance(scorer, InputView):
                self._own_retrieval(scorer, result)
        if result.product_fit is not None:
            result.results[product.RUN] = product.run(
                self.config, result.product_fit, self.store, result.cases,
                result.dataset.items, progress=self.progress)

    def _own_retrieval(self, scorer: InputView, result: EvalResult) -> None:
        """The baseline's own top n of the whole catalog per user (pipeline protocol)."""
        n, name = self.config.protocol.n_candidates, scorer.name + RETRIEVAL_SUFFIX
        if scorer.can_retrieve:
            result.results[name] = {setting: [baseline_result(scorer, scorer.retrieve(c, n))
                                              for c in cases]
                                    for setting, cases in result.cases.items()}
            result.extra_runs.append(name)

    def _scorers(self, result: EvalResult) -> Iterator[Scorer]:
        # one meaning of positive everywhere; "all" inputs: what the product learns from
        train = training_rows(self.config, result.loo.train, result.loo.positives)
        yield from build_scorers(
            self.config, train, self.store, cache=self.models,
            trained=result.training,
            progress=(lambda line: tqdm.write(line)) if self.progress else (lambda _: None))
        if self.extra_scorers is not None:
            yield from self.extra_scorers(result)

    # ---- LLM variants ------------------------------------------------------------------

    def variants(self, result: EvalResult, client: LLMClient) -> None:
        """Every variant over the LLM sample, through one response cache."""
        cache_path = self.config.llm.cache or self.out / "state" / "llm_cache.sqlite"
        result.llm_model = client.model
        with CachingClient(client, cache_path) as cached:
            for variant in self.config.variants:
                result.results[variant.name], session = self._variant(variant, cached, result)
                result.sessions.append(session)
            result.cache = cached.stats

    def _variant(
        self, variant: VariantConfig, client: CachingClient, result: EvalResult
    ) -> tuple[dict[int, list[UserResult]], Session]:
        cfg, items = self.config, result.dataset.items
        sample = set(result.llm_users)
        demos = demonstrations(variant, result.loo.splits, items, result.dataset.rated_items(),
                               exclude=sample, seed=cfg.seed)
        ranker = build_ranker(variant, client, PromptLibrary(), demos, seed=cfg.seed)
        plain = Recommender(self.store, None, ranker)  # every case brings its candidates
        before, start = client.stats, time.perf_counter()
        fits = self._fit_fusion(variant, ranker, result) if variant.fusion else []
        weights = {user: by_setting for users, by_setting in fits for user in users}
        identity: list[object] = [variant.identity(), client.model,
                                  cfg.llm.base_url, cfg.degraded_scores_zero]
        if fits:  # a refit with other weights must not reuse the fused results
            per_fold = [{str(s): w for s, w in by_setting.items()} for _, by_setting in fits]
            identity.append(per_fold if variant.fit_folds else per_fold[0])
        log = ResultLog(self.out / "state" / f"{variant.name}-{cfg.fingerprint(*identity)}.jsonl",
                        UserResult)
        keys = {(s, c.user): c.key for s, cases in result.cases.items() for c in cases}
        done = {(r.setting, r.user): r for r in log.read()
                if r.case == keys.get((r.setting, r.user))}
        todo = [c for s, cases in result.cases.items() for c in cases
                if c.user in sample and (s, c.user) not in done]
        if cfg.protocol.llm_only_when_retrieved:
            for case in [c for c in todo if c.target not in c.candidates]:
                done[(case.setting, case.user)] = skipped_result(case, variant.name)
            todo = [c for c in todo if c.target in c.candidates]

        def recommender_for(case: Case) -> Recommender:
            if not variant.fusion:
                return plain
            fused = FusionRanker(ranker, weights[case.user][case.setting])
            return Recommender(self.store, None, fused)

        with tqdm(total=len(todo), desc=variant.name, unit="user",
                  disable=not self.progress) as bar:
            for finished in self._map(recommender_for, partial(self._source_scores, variant),
                                      todo, variant.name, items):
                log.append(finished)
                done[(finished.setting, finished.user)] = finished
                bar.update()
        after = client.stats
        session = Session(run=variant.name, elapsed_s=time.perf_counter() - start,
                          users=len(todo), llm_calls=after.misses - before.misses,
                          cache_hits=after.hits - before.hits)
        per_setting = {s: [done[(s, c.user)] for c in cases if c.user in sample]
                       for s, cases in result.cases.items()}
        return per_setting, session

    def _source_scores(self, variant: VariantConfig, case: Case) -> dict[str, dict[str, float]]:
        """The scores of the baselines this variant fuses, for one case's candidates."""
        return {n: self.scorers[n].score(case) for n in variant.fusion}

    def _fit_fusion(
        self, variant: VariantConfig, ranker: Ranker, result: EvalResult
    ) -> list[tuple[list[str], dict[int, dict[str, float]]]]:
        """(evaluated users, their weights per setting) per fold, fitted on validation users
        outside the LLM sample (eval.fusion) or, cross-fitted, outside the fold. Their LLM
        scores cost one call each, counted with the variant's calls; the evaluated users'
        calls are shared with the unfused variant through the response cache."""
        seed = self.config.seed
        groups = (folds(result.llm_users, variant.fit_folds, seed) if variant.fit_folds
                  else [result.llm_users])
        validation = [{s: validation_users(cases, set(g), variant.fit_users, seed)
                       for s, cases in result.cases.items()} for g in groups]
        empty = sorted({s for by_setting in validation for s, us in by_setting.items() if not us})
        if empty:  # checked before any call is paid for
            raise ConfigError(
                f"variant {variant.name!r}: no user outside the LLM sample (or the fold) has the "
                f"target among the candidates (history settings {empty}) to fit fusion weights "
                "on; lower users.llm_sample or set fit_folds")
        fits = [self._fit_group(variant, ranker, result, users) for users in validation]
        folder = self.out / "state"
        folder.mkdir(parents=True, exist_ok=True)
        record = [{str(s): {"weights": w, "validation_ndcg@10": nd, "users": users[s]}
                   for s, (w, nd) in fit.items()} for fit, users in zip(fits, validation,
                                                                       strict=True)]
        (folder / f"fusion-{variant.name}.json").write_text(
            json.dumps(record[0] if len(record) == 1 else record, indent=1))
        per_setting = {s: [fit[s][0] for fit in fits] for s in result.cases}
        result.fusion_weights[variant.name] = {
            s: {n: sum(w[n] for w in ws) / len(ws) for n in ws[0]} for s, ws in per_setting.items()}
        return [(group, {s: w for s, (w, _) in fit.items()})
                for group, fit in zip(groups, fits, strict=True)]

    def _fit_group(
        self, variant: VariantConfig, ranker: Ranker, result: EvalResult,
        validation: dict[int, list[str]],
    ) -> dict[int, tuple[dict[str, float], float]]:
        """One fit per setting on the given validation users: (weights, their NDCG@10)."""
        items = result.dataset.items
        names = [LLM_SOURCE, *variant.fusion] if variant.fuse_llm else list(variant.fusion)
        fitted: dict[int, tuple[dict[str, float], float]] = {}
        with ThreadPoolExecutor(max_workers=self.config.llm.concurrency) as pool:
            for setting, cases in result.cases.items():
                by_user = {c.user: c for c in cases}
                chosen = [by_user[u] for u in validation[setting]]
                llm = list(tqdm(
                    pool.map(lambda c: case_llm_scores(ranker, c, items, self.config.protocol.k),
                             chosen),
                    total=len(chosen), desc=f"{variant.name} (fitting)", unit="user",
                    disable=not self.progress)) if variant.fuse_llm else [{}] * len(chosen)
                examples = [({LLM_SOURCE: scores, **self._source_scores(variant, c)},
                             c.candidates, c.target) for c, scores in zip(chosen, llm, strict=True)]
                fitted[setting] = fit_weights(examples, names, seed=self.config.seed)
        return fitted

    def _map(
        self, recommender_for: Callable[[Case], Recommender],
        sources: Callable[[Case], dict[str, dict[str, float]]], cases: Sequence[Case],
        run: str, items: dict[str, Item],
    ) -> Iterator[UserResult]:
        """Results as they finish, at most `concurrency` requests in flight. On Ctrl-C the
        queued users are cancelled; the ones in flight finish into the response cache."""
        k, zero = self.config.protocol.k, self.config.degraded_scores_zero
        pool = ThreadPoolExecutor(max_workers=self.config.llm.concurrency)
        try:
            futures: list[Future[UserResult]] = [
                pool.submit(llm_result, recommender_for(c), c, run, k, items, zero, sources(c))
                for c in cases
            ]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
