"""The `product` row: the product as it ships, fitted on this run's training split.

`recagent fit` (recagent.wiring.fit_product) runs on the leave-one-out training
interactions exactly as it runs on an ingested catalog: it holds out its own validation
users inside them (never a test target), fits the retrieval fusion and the reranking
weights, and the product's wiring builds the retriever and the reranker from that fit.
Each test user then goes through the product's `Recommender.recommend` (its gate
included) on:
- the pipeline protocol: the candidates the fitted retrieval proposed (every ranker of
  the run ranks these same candidates);
- the LLMRank protocol: the given 1 + N candidates, in the order and with the scores the
  product's retrieval gives them when each source is asked for its top `depth` items (300
  by default; an item no source ranks that deep keeps its place in the given order, after
  the others: the product would not have proposed it).
The product's explanations are not written here: they never change the order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from eval.config import EvalConfig
from eval.per_user import llm_result
from eval.protocols import Case, Split, retrieval_history
from eval.results import UserResult
from recagent.fit import FIT_VERSION, FittedConfig, Row
from recagent.recommender import Recommender
from recagent.types import Candidate, Item
from recagent.wiring import (
    build_retriever,
    fit_product,
    fitted_fusion,
    fitted_retriever_spec,
    without_llm,
)
from retrieval.hybrid import HybridRetriever
from retrieval.store import CatalogStore

RUN = "product"


def fit_key(config: EvalConfig, collection: str, rows: Sequence[Row]) -> str:
    """What a product fit depends on: the rows and the fit's settings."""
    assert config.product is not None
    return hashlib.sha256(json.dumps([
        FIT_VERSION, collection, config.protocol.n_candidates, config.product.fit_users,
        config.seed, config.protocol.cut != "leave_one_out", list(rows)]).encode()
    ).hexdigest()[:16]


def fit(config: EvalConfig, store: CatalogStore, rows: Sequence[Row], out: Path,
        *, progress: bool, cache: Path | None = None) -> FittedConfig:
    """`recagent fit` on the training rows, without the LLM; saved beside the report. With
    `cache`, a fit of the same rows and settings made by an earlier run (another protocol
    on the same training split) is read back instead of fitted again."""
    assert config.product is not None
    n, strict = config.protocol.n_candidates, config.protocol.cut != "leave_one_out"
    kept = cache / f"fit-{fit_key(config, store.collection.name, rows)}.json" if cache else None
    if kept is not None and kept.is_file():
        fitted = FittedConfig.model_validate_json(kept.read_text(encoding="utf-8"))
    else:
        fitted = fit_product(
            store, rows, collection=store.collection.name, ranker=None, llm_model=None,
            n=n, n_users=config.product.fit_users, seed=config.seed, strict=strict,
            progress=(lambda line: tqdm.write(f"product fit: {line}")) if progress
            else (lambda _: None),
            min_users=1)  # an eval fits whatever its split holds; the report gives the count
    text = json.dumps(fitted.model_dump(mode="json"), indent=1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "product_fit.json").write_text(text)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(text)
    return fitted


def retriever(fitted: FittedConfig, store: CatalogStore, rows: Sequence[Row],
              *, depth: int | None = None) -> HybridRetriever:
    """The product's retrieval as the fit chose it (`depth`: items asked of each source)."""
    spec = fitted_retriever_spec(fitted)
    if depth is not None:
        spec = spec.model_copy(update={"hybrid": spec.hybrid.model_copy(
            update={"depth": depth})})
    built = build_retriever(spec, store, rows)
    assert isinstance(built, HybridRetriever)
    return built


def scored_candidates(case: Case, split: Split, deep: HybridRetriever, items: dict[str, Item],
                      max_history: int, depth: int) -> Case:
    """An LLMRank case with the product's retrieval order and scores of its candidates."""
    fused = deep.retrieve(retrieval_history(split, case.setting, max_history), depth)
    given = set(case.candidates)
    found = [c for c in fused if c.item.id in given]
    proposed = {c.item.id for c in found}
    rest = [c for c in case.candidates if c not in proposed]
    return dataclasses.replace(case, found=(*found, *(
        Candidate(item=items[c], rank=len(found) + n, score=0.0) for n, c in enumerate(rest))))


def run(config: EvalConfig, fitted: FittedConfig, store: CatalogStore,
        cases: dict[int, list[Case]], items: dict[str, Item], *, progress: bool
        ) -> dict[int, list[UserResult]]:
    """Every user of every setting through the product's recommender."""
    recommender = Recommender(store, None, without_llm(fitted_fusion(fitted)))
    out: dict[int, list[UserResult]] = {}
    for setting, group in cases.items():
        out[setting] = [
            llm_result(recommender, case, RUN, config.protocol.k, items,
                       config.degraded_scores_zero, found=list(case.found))
            for case in tqdm(group, desc=f"product (history {setting or 'full'})", unit="user",
                             disable=not progress, leave=False)]
    return out

