"""The item cold start protocol and its rankers on a small real catalog (real Chroma, the
real MiniLM; an LLM's vectors stood in for by another collection): cold items by first
rating, warm-only training, cold candidates, the rows, and the rule's verdict."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from eval.config import EvalConfig, load_config
from eval.datasets import Dataset, Rating
from eval.harness import EvalResult, Harness
from eval.item_coldstart import SKIP_FEW_COLD, SKIP_WARM_TARGET, cold_items, cold_split
from eval.item_coldstart_config import ItemColdStartConfig, item_rows
from eval.item_coldstart_judge import judge, markdown
from eval.item_coldstart_rankers import (
    AttributePopularityScorer,
    ColdStartRankers,
    FusedScorer,
    attributes,
)
from eval.protocols import FULL, Case, leave_one_out
from eval.results import UserResult
from recagent.errors import ConfigError
from recagent.rank.ensemble import fuse
from recagent.types import Item
from retrieval.embeddings import OnnxEmbedder
from retrieval.item_vectors import NamedEmbedder, embed_catalog, vector_collection
from retrieval.store import CatalogStore

REPO = Path(__file__).resolve().parents[2]
GENRE = {"h": "Horror", "a": "Animation", "s": "Sci-Fi", "r": "Romance"}
USERS = {"h": 14, "a": 8, "s": 8, "r": 8}
"""Users per genre: horror is the most popular genre among the warm items."""


def ratings() -> tuple[Rating, ...]:
    """Each user rates four warm items of their genre (x1..x5) before t=1000; the first five
    of each genre then rate the genre's cold item x6 (t >= 2000), their last positive."""
    out: list[Rating] = []
    for g, n in USERS.items():
        for u in range(n):
            for k in range(4):
                out.append(Rating(user=f"{g}{u}", item=f"{g}{1 + (u + k) % 5}", rating=5.0,
                                  ts=10 * u + k))
            if u < 5:
                out.append(Rating(user=f"{g}{u}", item=f"{g}6", rating=5.0, ts=2000 + u))
    return tuple(out)


@pytest.fixture(scope="module")
def dataset(mini_items: list[Item]) -> Dataset:
    return Dataset(name="mini", ratings=ratings(), items={i.id: i for i in mini_items})


def config(**over: Any) -> EvalConfig:
    raw: dict[str, Any] = {
        "name": "cold", "seed": 3,
        "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "item_coldstart", "n_negatives": 3, "k": 3,
                     "history_lengths": [1, "full"]},
        "baselines": {"include": ["random", "popularity"]},
        "item_coldstart": {"cold_share": 0.15, "models": ["stand-in"], "ridge": [0.1, 1.0],
                           "rule": "as written"},
    }
    raw.update(over)
    return EvalConfig.model_validate(raw)


def test_cold_items_are_the_newest_by_first_rating(dataset: Dataset) -> None:
    cold = cold_items(dataset, 0.15)  # ceil(0.15 x 24) = 4 items
    assert cold.items == {"h6", "a6", "s6", "r6"} and cold.cut_ts == 2000
    assert list(cold.pool) == ["a6", "h6", "r6", "s6"]  # the data set's id order
    assert cold.catalog == 24
    # items first rated in the same second are never split: both or neither
    tied = Dataset(name="t", items={}, ratings=(
        Rating("u", "1", 5.0, 1), Rating("u", "2", 5.0, 2), Rating("v", "3", 5.0, 2)))
    assert cold_items(tied, 0.3).items == {"2", "3"}
    with pytest.raises(ValueError, match="cold_share"):
        cold_items(dataset, 1.0)


def test_only_cold_targets_are_tested_and_no_cold_interaction_is_trained_on(
    dataset: Dataset,
) -> None:
    loo = leave_one_out(dataset, seed=3)
    split = cold_split(loo, cold_items(dataset, 0.15), n_negatives=3)
    assert {s.user for s in split.splits} == {f"{g}{u}" for g in "hasr" for u in range(5)}
    assert all(s.target == s.user[0] + "6" for s in split.splits)
    assert split.skipped[SKIP_WARM_TARGET] == sum(USERS.values()) - 20
    assert split.train and not {r.item for r in split.train} & {"h6", "a6", "s6", "r6"}
    assert split.threshold == loo.threshold
    too_many = cold_split(loo, cold_items(dataset, 0.15), n_negatives=4)
    assert too_many.splits == [] and too_many.skipped[SKIP_FEW_COLD] == 20


def test_attribute_popularity_is_learned_on_warm_items(
    dataset: Dataset, mini_items: list[Item]
) -> None:
    assert attributes(mini_items[0]) == ["genre:Horror", "year:1990"]
    loo = cold_split(leave_one_out(dataset, seed=3), cold_items(dataset, 0.15), n_negatives=3)
    scorer = AttributePopularityScorer(loo.positives, dataset.items, grid=(0.1, 1.0))
    case = Case(user="a0", setting=FULL, history=(), target="a6",
                candidates=("a6", "h6", "r6", "s6"))
    scores = scorer.score(case)
    assert max(scores, key=lambda c: scores[c]) == "h6"  # horror: the popular warm genre
    assert scorer.fit.warm_items == 20 and scorer.fit.target_dim == 1


@pytest.fixture(scope="module")
def stores(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> tuple[CatalogStore, CatalogStore]:
    """The catalog, and another embedder's collection (MiniLM under another name)."""
    root = tmp_path_factory.mktemp("cold") / "chroma"
    store = CatalogStore.open(embedder, path=root, name="mini")
    store.ingest(mini_items)
    named = NamedEmbedder(embedder, "llamacpp:stand-in:mean")
    vectors = CatalogStore.open(named, path=root, name=vector_collection("mini", named.name))
    embed_catalog(vectors, mini_items)
    return store, vectors


@pytest.fixture(scope="module")
def run(
    dataset: Dataset, stores: tuple[CatalogStore, CatalogStore],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Harness, EvalResult, ColdStartRankers]:
    store, vectors = stores
    cfg = config()
    rankers = ColdStartRankers(store, {"stand-in": vectors}, items=dataset.items,
                               grid=(0.1, 1.0), seed=3)
    harness = Harness(cfg, dataset=dataset, store=store, out=tmp_path_factory.mktemp("out"),
                      progress=False,
                      extra_scorers=lambda r: rankers(r.loo.train, r.loo.positives))
    result = harness.prepare()
    harness.baselines(result)
    return harness, result, rankers


def test_every_candidate_is_cold_unseen_and_the_target_is_among_them(
    run: tuple[Harness, EvalResult, ColdStartRankers],
) -> None:
    _, result, _ = run
    for cases in result.cases.values():
        assert len(cases) == 20
        for c in cases:
            assert c.target in c.candidates and set(c.candidates) == {"h6", "a6", "s6", "r6"}


def test_the_rows_run_beside_the_baselines(
    run: tuple[Harness, EvalResult, ColdStartRankers],
) -> None:
    _, result, rankers = run
    assert result.baselines == [
        "random", "popularity", "pop_attributes", "minilm_text", "minilm_mapped",
        "minilm_fusion", "nollm_fusion", "minilm_centred", "llm_text.stand-in",
        "llm_mapped.stand-in", "llm_fusion.stand-in", "all_fusion.stand-in", "llm_centred.stand-in"]
    assert set(rankers.maps) == {"pop_attributes", "minilm_mapped", "llm_mapped.stand-in"}
    # the config's list of row names (what a variant may fuse) is the rows built, in order
    assert result.baselines[2:] == item_rows(["stand-in"])
    # text finds the cold item of the user's genre: the history is that genre's items
    full = {r.user: r.ranking for r in result.results["minilm_text"][FULL]}
    assert all(ranking[0] == user[0] + "6" for user, ranking in full.items())
    mapped = {r.user: r.ranking for r in result.results["minilm_mapped"][FULL]}
    assert sum(ranking[0] == user[0] + "6" for user, ranking in mapped.items()) >= 15
    centred = {r.user: r.ranking for r in result.results["llm_centred.stand-in"][FULL]}
    assert sum(ranking[0] == user[0] + "6" for user, ranking in centred.items()) >= 15
    # collaborative popularity knows no cold item: every score ties
    assert all(r.ranking for r in result.results["popularity"][FULL])


def test_a_fusion_is_the_equal_weight_sum_of_its_parts(
    run: tuple[Harness, EvalResult, ColdStartRankers],
) -> None:
    harness, result, _ = run
    parts = [harness.scorers["minilm_text"], harness.scorers["pop_attributes"]]
    case = result.cases[FULL][0]
    expected = fuse({p.name: p.score(case) for p in parts}, {p.name: 1.0 for p in parts},
                    case.candidates)
    assert FusedScorer(parts, "f").score(case) == pytest.approx(expected)


def test_the_verdict_follows_the_rule(run: tuple[Harness, EvalResult, ColdStartRankers]) -> None:
    _, result, _ = run
    spec = ItemColdStartConfig(ridge=[1.0], rule="as written")
    verdict = judge(result, spec)
    # the stand-in vectors are MiniLM's: no relative gain, so the rule cannot pass
    assert verdict["best_minilm"] in ("minilm_text", "minilm_mapped", "minilm_fusion")
    assert verdict["best_llm"].endswith(".stand-in") and verdict["users"] == 20
    assert "llm_centred.stand-in" in verdict["rows"]  # reported, never judged
    assert not verdict["best_llm"].startswith("llm_centred")
    assert verdict["relative_gain"] == pytest.approx(0.0, abs=1e-9)
    assert not verdict["clauses"]["llm_gain_at_least_min"] and not verdict["passed"]
    assert verdict["clauses"]["minilm_beats_pop_attributes"]  # text: perfect here
    text = markdown(verdict, {"cold": {"items": 4, "catalog": 24, "share": 0.15, "cut": "t",
                                       "negatives": 3, "train_dropped": 20},
                              "passes": {}, "maps": {}, "scoring_ms": {}})
    assert "NOT PASSED" in text and "as written" in text
    # the stand-in is MiniLM again: its share is reported per setting, whatever its sign
    assert set(verdict["llm_share"]) == {"1", "full"}
    assert set(verdict["llm_share"]["full"]) == {"all_fusion.stand-in"}
    assert "LLM's share" in text and "| full | all_fusion.stand-in |" in text


def _results(name: str, cases: list[Case], hits: int) -> list[UserResult]:
    """A row that ranks the target first for the first `hits` users, last for the rest."""
    return [UserResult(run=name, user=c.user, setting=c.setting, history_len=1,
                       ranking=([c.target] if n < hits else []) +
                       [x for x in c.candidates if x != c.target] +
                       ([] if n < hits else [c.target]))
            for n, c in enumerate(cases)]


def test_a_clear_llm_gain_passes_and_a_small_one_does_not(
    run: tuple[Harness, EvalResult, ColdStartRankers],
) -> None:
    _, real, _ = run
    cases = real.cases[FULL]
    rows = {"pop_attributes": 2, "minilm_text": 10, "llm_text.m": 19, "nollm_fusion": 10,
            "all_fusion.m": 18}
    result = EvalResult(config=real.config, dataset=real.dataset, loo=real.loo,
                        cases={FULL: cases}, llm_users=[], extra_runs=list(rows),
                        results={n: {FULL: _results(n, cases, h)} for n, h in rows.items()})
    spec = ItemColdStartConfig(ridge=[1.0])
    verdict = judge(result, spec)
    assert verdict["passed"] and verdict["best_llm"] == "llm_text.m"
    # the LLM's share: all_fusion.m minus nollm_fusion, 8 more hits of 20
    share = verdict["llm_share"]["full"]["all_fusion.m"]
    assert share["delta"] == pytest.approx(
        verdict["rows"]["all_fusion.m"]["ndcg@10"] - verdict["rows"]["nollm_fusion"]["ndcg@10"])
    assert share["delta"] > 0 and share["significant"]
    assert verdict["relative_gain"] > 0.10
    assert math.isclose(verdict["rows"]["llm_text.m"]["vs_pop_attributes"]["delta"],
                        verdict["rows"]["llm_text.m"]["ndcg@10"] -
                        verdict["rows"]["pop_attributes"]["ndcg@10"])
    close = {**rows, "minilm_text": 8, "llm_text.m": 11}
    result.results = {n: {FULL: _results(n, cases, h)} for n, h in close.items()}
    verdict = judge(result, spec)  # +13% NDCG@10 (3 more hits of 20): p = 0.08
    assert verdict["relative_gain"] == pytest.approx(0.1297, abs=1e-3)
    assert verdict["clauses"]["llm_gain_at_least_min"]
    assert not verdict["clauses"]["llm_vs_minilm_significant"] and not verdict["passed"]
    assert verdict["rows"]["llm_text.m"]["vs_best_minilm"]["p"] == pytest.approx(0.0828, abs=1e-3)


def test_the_config_rules() -> None:
    with pytest.raises(ValueError, match="go together"):
        config(item_coldstart=None)
    with pytest.raises(ValueError, match="go together"):
        config(protocol={"kind": "llmrank", "n_negatives": 3, "k": 3})
    with pytest.raises(ValueError, match="exceeds"):
        config(protocol={"kind": "item_coldstart", "n_negatives": 3, "k": 5})


def test_the_committed_config_states_its_rule() -> None:
    cfg = load_config(REPO / "eval" / "configs" / "item_coldstart_ml100k.toml")
    spec = cfg.item_coldstart
    assert spec is not None and cfg.protocol.kind == "item_coldstart"
    assert spec.cold_share == 0.1 and spec.min_relative_gain == 0.10 and spec.max_p == 0.05
    assert "10%" in spec.rule and "popularity-by-attributes" in spec.rule
    with pytest.raises(ConfigError):
        load_config(REPO / "eval" / "configs" / "missing.toml")
