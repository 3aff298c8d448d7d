"""The item map: ridge regression from text vectors into the ALS space, fitted on warm
items only, over the small real catalog (real MiniLM vectors, real Chroma, real ALS)."""

from __future__ import annotations

import numpy as np
import pytest

from recagent.errors import ConfigError
from recagent.types import Interaction, Item, UserHistory
from retrieval.als import ALSRetriever
from retrieval.embeddings import OnnxEmbedder
from retrieval.item_map import MappedRetriever, cross_validated, fit_item_map, fit_ridge, r2
from retrieval.store import CatalogStore

# Warm items: five of each genre cluster (h6 too); a6, s6 and r6 are cold (no interaction).
CLUSTERS = {"h": ["h1", "h2", "h3", "h4", "h5", "h6"], "a": ["a1", "a2", "a3", "a4", "a5"],
            "s": ["s1", "s2", "s3", "s4", "s5"], "r": ["r1", "r2", "r3", "r4", "r5"]}
_rng = np.random.default_rng(0)
ROWS = [(f"{g}{u}", item, 5.0, 10 * u + k)
        for g, items in CLUSTERS.items() for u in range(10)
        for k, item in enumerate(_rng.choice(items, size=4, replace=False).tolist())]
COLD = ["a6", "s6", "r6"]


def liked(*items: str) -> UserHistory:
    return UserHistory(interactions=[Interaction(item_id=i, rating=5, ts=n)
                                     for n, i in enumerate(items)])


def test_ridge_recovers_a_linear_map_with_an_intercept() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    weights, bias = rng.normal(size=(6, 3)), np.array([1.0, -2.0, 0.5])
    y = x @ weights + bias
    fitted = fit_ridge(x, y, 1e-6)
    assert np.allclose(fitted.weights, weights, atol=1e-4)
    assert np.allclose(fitted.apply(x[:5]), y[:5], atol=1e-4)
    assert r2(fitted.apply(x), y) == pytest.approx(1.0)


def test_ridge_shrinks_towards_the_mean_vector() -> None:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([[0.0], [2.0], [4.0], [6.0]])
    # slope = Σxy / (Σx² + λ) on centred data: 10 / (5 + 5) = 1, the mean kept
    fitted = fit_ridge(x, y, 5.0)
    assert fitted.weights[0, 0] == pytest.approx(1.0)
    assert fitted.apply(np.array([[1.5]]))[0, 0] == pytest.approx(3.0)


def test_cross_validation_prefers_little_penalty_for_signal_and_most_for_noise() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 10))
    signal = x @ rng.normal(size=(10, 2))
    best, scores = cross_validated(x, signal, (0.01, 1.0, 100.0))
    assert best == 0.01 and scores[0.01] > 0.99
    noise = rng.normal(size=(120, 2))
    best, scores = cross_validated(x, noise, (0.01, 1.0, 1000.0))
    assert best == 1000.0 and max(scores.values()) < 0.05


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ridge"):
        fit_ridge(np.zeros((3, 2)), np.zeros((3, 1)), 0.0)
    with pytest.raises(ConfigError, match="matching rows"):
        fit_ridge(np.zeros((3, 2)), np.zeros((4, 1)), 1.0)
    with pytest.raises(ConfigError, match="folds"):
        fit_item_map(np.zeros((3, 2)), np.zeros((3, 1)), source="x")


@pytest.fixture(scope="module")
def store(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> CatalogStore:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("map") / "chroma")
    store.ingest(mini_items)
    return store


@pytest.fixture(scope="module")
def mapped(store: CatalogStore) -> MappedRetriever:
    als = ALSRetriever(store, ROWS, factors=4, regularization=0.05, iterations=40, seed=0)
    return MappedRetriever(store, als, source="text_mapped", grid=(0.01, 0.1, 1.0))


def test_the_map_is_fitted_on_warm_items_and_maps_every_item(
    mapped: MappedRetriever, mini_items: list[Item]
) -> None:
    assert mapped.fit.warm_items == 21 and set(COLD).isdisjoint(mapped.als.index)
    assert mapped.fit.text_dim == 384 and mapped.fit.target_dim == 4
    assert mapped.fit.cv_r2 > 0.3  # text predicts the genre clusters' ALS vectors
    assert mapped.mapped.shape == (len(mini_items), 4)


def test_a_cold_item_of_the_liked_genre_comes_first(mapped: MappedRetriever) -> None:
    for history, expected in ((liked("a1", "a2", "a3"), "a6"), (liked("s1", "s2"), "s6"),
                              (liked("r2", "r4"), "r6")):
        scores = mapped.score(history, COLD)
        assert max(scores, key=lambda i: scores[i]) == expected


def test_a_history_of_cold_items_only_still_folds_in(mapped: MappedRetriever) -> None:
    user, known, _ = mapped.fold_in(liked("a6"))
    assert known == ["a6"] and np.linalg.norm(user) > 0
    assert mapped.als.fold_in(["a6"])[1] == []  # ALS alone knows nothing of it
    found = mapped.retrieve(liked("a6"), 5)
    assert sum(c.item.id.startswith("a") for c in found) >= 4


def test_retrieve_excludes_seen_items_and_names_its_source(mapped: MappedRetriever) -> None:
    history = liked("h1", "h2", "h6")
    found = mapped.retrieve(history, 6)
    ids = [c.item.id for c in found]
    assert len(ids) == 6 and not set(ids) & history.seen_ids
    assert all(c.scores_by_source == {"text_mapped": c.score} for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    assert all(c.nearest_history_id in history.seen_ids for c in found)
    assert mapped.score(history, ["h3", "nope"]).keys() == {"h3"}
