"""`recagent fit` (recagent/fit.py): who is held out, what each fit learns, and that the
saved fit is read back and used. Real Chroma and real retrievers on a small catalog; the
LLM is scripted at the client boundary where its scores are needed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fakes import ScriptedClient

from recagent.errors import ConfigError
from recagent.fit import (
    SEMANTIC_FLOOR,
    FittedConfig,
    Held,
    built_features,
    fit_catalog,
    fit_rerank,
    fit_retrieval,
    hold_out,
    llm_gain,
    load_fitted,
    row_rating,
    save_fitted,
    single_source,
)
from recagent.llm.prompts import PromptLibrary
from recagent.rank.logprob import LogprobRanker
from recagent.types import Candidate, Completion, Item, Usage, UserHistory
from retrieval.collaborative import CoOccurrenceRetriever, PopularityRetriever
from retrieval.embeddings import Embedder
from retrieval.hybrid import HybridRetriever
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

Row = tuple[str, str, float | None, int | None]


def rows_of(users: int = 40) -> list[Row]:
    """Every user likes 'a' then 'b' then 'c' (in time): 'c' follows 'b' for everyone, so
    co-occurrence finds it and popularity (everyone liked 'a' too) ties it."""
    rows: list[Row] = []
    for u in range(users):
        rows += [(f"u{u}", "a", 5.0, 10), (f"u{u}", "b", 4.0, 20), (f"u{u}", "c", 5.0, 30)]
        rows.append((f"u{u}", f"x{u % 5}", 2.0, 5))  # a disliked item, early
    return rows


def test_hold_out_keeps_the_target_and_the_future_out_of_training() -> None:
    rows = [*rows_of(), ("u0", "d", 5.0, 30)]  # u0: two positives tie on the last time
    train, held = hold_out(rows, 10, seed=3)
    assert len(held) == 10 and len({h.user for h in held}) == 10
    for h in held:
        own = [r for r in train if r[0] == h.user]
        assert all(r[1] != h.target for r in own)
        assert h.target not in h.history.seen_ids
        assert all(r[3] is not None and r[3] < 30 for r in own)  # nothing at or after it
    again = hold_out(rows, 10, seed=3)
    assert [(h.user, h.target) for h in again[1]] == [(h.user, h.target) for h in held]
    untouched = {r[0] for r in rows} - {h.user for h in held}
    assert {r for r in rows if r[0] in untouched} <= set(train)


def test_the_strict_hold_out_keeps_the_targets_second_out_and_all_users_by_default() -> None:
    rows = [("u0", "d", 2.0, 30), *rows_of()]  # u0 rated d in its target's second, first
    train, held = hold_out(rows, None, seed=3, strict=True)
    assert len(held) == 40  # None: every user the data allows
    u0 = next(h for h in held if h.user == "u0")
    assert u0.target == "c" and "d" not in u0.history.seen_ids
    assert all(r[3] is not None and r[3] < 30 for r in train)
    loose = next(h for h in hold_out(rows, None, seed=3)[1] if h.user == "u0")
    assert "d" in loose.history.seen_ids  # the loose cut keeps what came first in that second


class Listed:
    """A source that proposes hand-made lists, by user."""

    def __init__(self, by_user: dict[str, list[str]]) -> None:
        self.by_user = by_user

    def retrieve(self, history: UserHistory, n: int = 20, **_: object) -> list[Candidate]:
        ids = self.by_user[history.user_id][:n]
        return [Candidate(item=Item(id=i, title=i, text=i), rank=r, score=1.0 / (r + 1))
                for r, i in enumerate(ids)]


def test_fit_picks_a_single_source_when_fusion_is_worse_on_validation() -> None:
    users = [f"u{n}" for n in range(6)]
    held = [Held(u, UserHistory.from_ids(["h"], user_id=u), f"t{u}") for u in users]
    # "good" puts each target first; "semantic" and "decoy" agree on a wrong item first and
    # rank the target nowhere: any fusion of "good" with the others pushes it down
    sources = {"semantic": Listed({u: [f"x{u}", f"y{u}"] for u in users}),
               "good": Listed({u: [f"t{u}", f"z{u}"] for u in users}),
               "decoy": Listed({u: [f"x{u}", f"y{u}"] for u in users})}
    weights, recall, equal, alone = fit_retrieval(HybridRetriever(sources), held, n=1)
    assert equal == 0.0 and alone == {"semantic": 0.0, "good": 1.0, "decoy": 0.0}
    assert weights == single_source(list(sources), "good") and recall == 1.0
    assert weights["semantic"] == SEMANTIC_FLOOR and weights["decoy"] == 0.0


def test_rerank_weighs_only_built_features_and_never_falls_below_the_retrieval_order() -> None:
    # the fused retrieval score (rrf) puts the target first; text similarity puts it last;
    # there is no popularity source (not built): no candidate has its score
    examples = [({"rrf": {"t": 3.0, "a": 2.0, "b": 1.0}, "semantic": {"t": 0.0, "a": 1.0,
                                                                     "b": 2.0}},
                 ["a", "b", "t"], "t") for _ in range(8)]
    assert built_features(examples) == ["rrf", "semantic"]
    weights, ndcg = fit_rerank(examples, with_llm=False, seed=0)
    assert set(weights) == {"rrf", "semantic"} and ndcg == pytest.approx(1.0)


def test_row_rating_maps_likes_to_the_scale() -> None:
    assert row_rating(3.0, None) == 3.0
    assert row_rating(None, True) == 5.0
    assert row_rating(None, False) is not None and row_rating(None, False) < 2  # type: ignore[operator]
    assert row_rating(None, None) is None  # a bare interaction: positive


@pytest.fixture(scope="module")
def store(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    s = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("fit"), name="fit")
    texts = {"a": "A space opera adventure", "b": "A space war sequel", "c": "A quiet drama",
             "d": "A cooking show"}
    s.ingest([Item(id=i, title=f"Film {i}", text=t) for i, t in texts.items()]
             + [Item(id=f"x{n}", title=f"Flop {n}", text="A forgettable comedy")
                for n in range(5)])
    return s


def hybrid(store: CatalogStore, rows: list[Row]) -> HybridRetriever:
    pairs = [(u, i) for u, i, r, _ in rows if r is None or r >= 4]
    return HybridRetriever({"semantic": SemanticRetriever(store),
                            "cooccurrence": CoOccurrenceRetriever(store, pairs),
                            "popularity": PopularityRetriever(store, pairs)})


def test_fit_retrieval_finds_weights_at_least_as_good_as_equal_ones(
        store: CatalogStore) -> None:
    train, held = hold_out(rows_of(), 12, seed=1)
    weights, recall, equal, alone = fit_retrieval(hybrid(store, train), held, n=1)
    assert set(weights) == {"semantic", "cooccurrence", "popularity"}
    assert weights["semantic"] > 0 and recall >= equal and recall >= max(alone.values())
    assert recall == 1.0  # with one candidate, only co-occurrence finds 'c' after 'b'


def test_fit_catalog_weighs_the_llm_and_saves_what_the_product_reads(
        store: CatalogStore, tmp_path: Path) -> None:
    def logprobs(_: object) -> Completion:  # the scripted LLM: always the first label
        return Completion(text="A", usage=Usage(prompt_tokens=5, completion_tokens=1),
                          top_logprobs=[{"A": math.log(0.9), "B": math.log(0.1)}])

    client = ScriptedClient(*[logprobs] * 50)
    fitted = fit_catalog(collection="fit", rows=rows_of(), build=lambda r: hybrid(store, r),
                         items=store.get, ranker=LogprobRanker(client, PromptLibrary()),
                         llm_model="scripted", n=3, k=2, n_users=10, seed=0)
    assert fitted.validation_users == 10 and fitted.llm_model == "scripted"
    assert set(fitted.rerank_weights) == {"rrf", "semantic", "popularity", "llm"}
    # an LLM that only repeats the given order adds nothing out of fold: weight 0
    assert fitted.validation["llm_gain_p"] >= 0.05
    assert fitted.rerank_weights["llm"] == 0 and fitted.llm_share == 0 and not fitted.uses_llm
    assert client.requests  # the LLM was asked for the validation users' scores
    path = save_fitted(tmp_path, fitted)
    assert load_fitted(tmp_path, "fit") == fitted and json.loads(path.read_text())
    assert load_fitted(tmp_path, "other") is None
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="run `recagent fit` again"):
        load_fitted(tmp_path, "fit")


def test_a_catalog_without_interactions_cannot_be_fitted(store: CatalogStore) -> None:
    with pytest.raises(ConfigError, match="ingest interactions first"):
        fit_catalog(collection="fit", rows=[], build=lambda r: hybrid(store, r),
                    items=store.get, ranker=None, llm_model=None)


def test_too_few_users_are_refused_not_fitted_to_noise(store: CatalogStore) -> None:
    """Probe case 11: `fit --users 10` on 3 users saved degenerate weights silently."""
    rows = rows_of(users=3)
    with pytest.raises(ConfigError, match=r"only 3 user.*at least 10"):
        fit_catalog(collection="fit", rows=rows, build=lambda r: hybrid(store, r),
                    items=store.get, ranker=None, llm_model=None, n_users=10)


def test_the_saved_fit_rejects_unknown_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="extra"):
        FittedConfig.model_validate({"collection": "c", "retrieval_weights": {},
                                     "rerank_weights": {}, "llm_model": None,
                                     "llm_share": 0, "validation_users": 1,
                                     "validation": {}, "interactions": 1,
                                     "fitted_at": "now", "surprise": 1})


def gain_examples(llm_knows: bool, users: int = 60) -> list[tuple[dict[str, dict[str, float]],
                                                                 list[str], str]]:
    """Ten candidates per user; the target is a seeded random one. Retrieval and
    popularity scores are noise; the LLM scores the target first when `llm_knows`."""
    import random

    rng = random.Random(5)
    out = []
    for u in range(users):
        ids = [f"u{u}i{n}" for n in range(10)]
        target = rng.choice(ids)
        noise = {name: {i: rng.random() for i in ids} for name in ("rrf", "semantic",
                                                                   "popularity")}
        llm = {i: (2.0 if i == target else rng.random()) if llm_knows else rng.random()
               for i in ids}
        out.append(({**noise, "llm": llm}, ids, target))
    return out


def test_the_llm_keeps_a_weight_only_for_an_out_of_fold_gain() -> None:
    gain, p = llm_gain(gain_examples(llm_knows=True), seed=0)
    assert gain > 0.3 and p < 0.001  # an LLM that knows the answer earns its weight
    gain, p = llm_gain(gain_examples(llm_knows=False), seed=0)
    assert not (gain > 0 and p < 0.05)  # noise does not
    assert llm_gain(gain_examples(llm_knows=True)[:1], seed=0) == (0.0, 1.0)  # one user
