"""The `product` row: `recagent fit` on the training split, then the product's own retrieval
and reranking through its Recommender, on the pipeline and LLMRank protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eval import product
from eval.config import EvalConfig, load_config
from eval.datasets import Dataset, Rating
from eval.harness import Harness
from eval.protocols import FULL, retrieval_history, to_history
from eval.report import markdown
from eval.summary import summarize
from recagent.errors import ConfigError
from recagent.fit import FittedConfig
from recagent.recommender import Recommender
from recagent.types import Item
from recagent.wiring import fitted_fusion, without_llm
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore

HEAD = """
name = "t"
[dataset]
kind = "ml-100k"
path = "unused"
"""


def test_the_product_row_needs_its_retriever_and_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    bad = {
        '[protocol]\nkind = "pipeline"\nretriever = "product"\n': "needs a \\[product\\] table",
        '[protocol]\nkind = "pipeline"\nretriever = "hybrid"\n[product]\n':
            'needs retriever = "product"',
        '[protocol]\nkind = "pipeline"\nretriever = "product"\n[product]\nfit_users = 0\n':
            "fit_users",
        '[protocol]\nkind = "llmrank"\n[product]\n[baselines]\ninclude = ["random"]\n'
        '[[variants]]\nname = "product"\n': "unique",
    }
    for text, message in bad.items():
        path.write_text(HEAD + text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text(HEAD + '[protocol]\nkind = "llmrank"\n[product]\nfit_users = 3\n')
    assert load_config(path).product is not None


# Each user's last item is the target (all rated 5); u2 also disliked h3 before its target.
HISTORIES = {"u1": ["s1", "s2", "s3", "s6"], "u2": ["h1", "h2", "h4"],
             "u3": ["a1", "a2", "a3"], "u4": ["a1", "a2", "h1"], "u5": ["r1", "r2"],
             "u6": ["h2", "h3", "h5"], "u7": ["h1", "h4", "a1"], "u8": ["s1", "s2", "s4"],
             "u9": ["a1", "a3", "a2"]}


@pytest.fixture(scope="module")
def store(embedder: OnnxEmbedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path_factory.mktemp("evalproduct") / "chroma")


@pytest.fixture
def data(mini_items: list[Item]) -> Dataset:
    ratings = [Rating(user=u, item=item, rating=5.0, ts=10 * n)
               for u, items in HISTORIES.items() for n, item in enumerate(items)]
    ratings.append(Rating(user="u2", item="h3", rating=1.0, ts=5))
    return Dataset(name="mini", items={i.id: i for i in mini_items}, ratings=tuple(ratings))


def config(kind: str) -> EvalConfig:
    raw: dict[str, Any] = {
        "name": "mini", "seed": 3, "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": kind, "k": 3, "n_negatives": 5, "n_candidates": 6},
        "product": {"fit_users": 4}, "baselines": {"include": ["random", "popularity"]},
    }
    if kind == "pipeline":
        raw["protocol"]["retriever"] = "product"
    return EvalConfig.model_validate(raw)


def test_pipeline_product_runs_its_own_fit_retrieval_and_recommender(
    store: CatalogStore, data: Dataset, tmp_path: Path
) -> None:
    result = Harness(config("pipeline"), dataset=data, store=store, out=tmp_path,
                     progress=False).run(None)
    fitted = result.product_fit
    assert fitted is not None
    assert fitted.interactions == len(result.loo.train)  # the fit saw training rows only
    assert 1 <= fitted.validation_users <= 4 and fitted.llm_model is None
    assert (tmp_path / "product_fit.json").is_file()
    rows = [(r.user, r.item, r.rating, r.ts) for r in result.loo.train]
    # a fit of the same rows and settings is kept and read back, not fitted again
    key = product.fit_key(result.config, store.collection.name, rows)
    kept = tmp_path / "state" / "models" / f"fit-{key}.json"
    assert FittedConfig.model_validate_json(kept.read_text()) == fitted
    again = product.fit(result.config, store, rows, tmp_path / "again", progress=False,
                        cache=kept.parent)
    assert again == fitted and again.fitted_at == fitted.fitted_at
    retriever = product.retriever(fitted, store, rows)
    recommender = Recommender(store, None, without_llm(fitted_fusion(fitted)))
    splits = {s.user: s for s in result.loo.splits}
    ran = {r.user: r for r in result.results["product"][FULL]}
    for case in result.cases[FULL]:
        split = splits[case.user]
        seen = retrieval_history(split, FULL, 50)
        # the candidates every ranker ranks are the product's own retrieval
        again = retriever.retrieve(seen, 6)
        assert tuple(c.item.id for c in again) == case.candidates
        assert [c.item.id for c in case.found] == list(case.candidates)
        assert not {r.item for r in split.prior} & set(case.candidates)
        # the row is the product's recommender on those candidates
        got = ran[case.user]
        assert not got.failed and set(got.ranking) <= set(case.candidates)
        expected = recommender.recommend(to_history(case.user, case.history), k=3,
                                         candidates=list(case.found))
        assert got.ranking == [i.item_id for i in expected.items]
    summary = summarize(result)
    entry = summary["populations"]["all"]["settings"]["full"]
    assert "product" in entry["rows"]
    assert set(entry["product_significance"]) == {"random", "popularity"}
    assert summary["product_fit"]["retrieval_weights"] == fitted.retrieval_weights
    text = markdown(summary)
    assert "p vs product" in text and "`product` row is the shipped configuration" in text


def test_llmrank_product_orders_the_given_candidates_by_its_retrieval(
    store: CatalogStore, data: Dataset, tmp_path: Path
) -> None:
    result = Harness(config("llmrank"), dataset=data, store=store, out=tmp_path,
                     progress=False).run(None)
    ran = {r.user: r for r in result.results["product"][FULL]}
    for case in result.cases[FULL]:
        found = [c.item.id for c in case.found]
        assert sorted(found) == sorted(case.candidates)  # every given candidate, once
        proposed = [c for c in case.found if c.scores_by_source]
        # the retrieved come first, best fused score first; the rest keep the given order
        assert [c.item.id for c in proposed] == found[:len(proposed)]
        assert [c.score for c in proposed] == sorted((c.score for c in proposed), reverse=True)
        rest = found[len(proposed):]
        assert rest == [c for c in case.candidates if c in rest]
        assert set(ran[case.user].ranking) <= set(case.candidates)
        assert len(ran[case.user].ranking) == 3
