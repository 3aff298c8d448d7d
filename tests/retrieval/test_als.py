"""The ALS source: item vectors in their own Chroma collection, a user folded in from a
sparse history, over the small real catalog (four genre clusters)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recagent.errors import ConfigError
from recagent.types import Interaction, Item, UserHistory
from retrieval import als as als_module
from retrieval.als import DIGEST_KEY, KEEP, ALSRetriever, train_als
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore

CLUSTERS = {"h": ["h1", "h2", "h3", "h4", "h5", "h6"], "a": ["a1", "a2", "a3", "a4", "a5"],
            "s": ["s1", "s2", "s3", "s4", "s5"], "r": ["r1", "r2", "r3", "r4", "r5"]}
# 10 users per genre, each with 4 of its items (a seeded choice), timestamps in order.
_rng = np.random.default_rng(0)
ROWS = [(f"{g}{u}", item, 5.0, 10 * u + k)
        for g, items in CLUSTERS.items() for u in range(10)
        for k, item in enumerate(_rng.choice(items, size=4, replace=False).tolist())]
SETTINGS = {"factors": 4, "regularization": 0.05, "iterations": 40, "alpha": 1.0, "seed": 0}


@pytest.fixture(scope="module")
def store(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> CatalogStore:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("als") / "chroma")
    store.ingest(mini_items)
    return store


@pytest.fixture(scope="module")
def retriever(store: CatalogStore) -> ALSRetriever:
    return ALSRetriever(store, ROWS, **SETTINGS)


def timed(*items: str) -> UserHistory:
    return UserHistory(interactions=[Interaction(item_id=i, rating=5, ts=n)
                                     for n, i in enumerate(items)])


def test_item_vectors_live_in_their_own_collection(
    store: CatalogStore, retriever: ALSRetriever
) -> None:
    coll = retriever.collection
    assert coll.name.startswith("catalog-als-") and coll.name != store.collection.name
    assert coll.count() == len(retriever.items) == 21
    assert DIGEST_KEY in (coll.metadata or {})
    got = coll.get(ids=["h1"], include=["embeddings"])
    assert np.allclose(got["embeddings"][0], retriever.item_factors[retriever.index["h1"]],
                       atol=1e-6)
    assert store.count() == 24  # the catalog itself is untouched


def test_fold_in_is_implicits_user_step_and_recovers_a_training_user(
    retriever: ALSRetriever,
) -> None:
    from implicit.als import AlternatingLeastSquares

    pairs = [(u, i) for u, i, _, _ in ROWS]
    users = list(dict.fromkeys(u for u, _ in pairs))
    user_factors, item_factors = train_als(users, retriever.items, pairs, **SETTINGS)
    assert np.allclose(item_factors, retriever.item_factors, atol=1e-6)
    # with every confidence alpha (no recency boost) the fold-in is one ALS user step:
    # close to the vector training gave that user
    plain = ALSRetriever.__new__(ALSRetriever)
    plain.__dict__.update(retriever.__dict__, recent_boost=0.0)
    for user in ("h0", "a3", "r7"):
        history = [i for u, i, _, _ in ROWS if u == user]
        vector, known, _ = plain.fold_in(history[::-1])
        learnt = user_factors[users.index(user)]
        cosine = vector @ learnt / np.linalg.norm(vector) / np.linalg.norm(learnt)
        assert sorted(known) == sorted(history) and cosine > 0.99
    # with recency confidences, exactly what implicit's recalculate_user computes
    model = AlternatingLeastSquares(factors=4, regularization=0.05, alpha=1.0)
    model.item_factors = retriever.item_factors.astype(np.float32)
    recent = ["h1", "h4", "a2"]  # most recent first
    c = retriever.confidences(3)
    assert c == pytest.approx([1 + 9.0, 1 + 9.0 * 0.9, 1 + 9.0 * 0.81])
    cols = [retriever.index[i] for i in recent]
    row = sp.csr_matrix((c.astype(np.float32), ([0, 0, 0], cols)),
                        shape=(1, len(retriever.items)))
    expected = model.recalculate_user(0, row)
    vector, _, shares = retriever.fold_in(recent)
    assert np.allclose(vector, expected, atol=1e-4)
    assert np.allclose(shares.sum(axis=1), vector)


def test_retrieval_is_a_chroma_query_near_the_user(retriever: ALSRetriever) -> None:
    found = retriever.retrieve(timed("h1", "h2"), 4)
    ids = [c.item.id for c in found]
    assert len(ids) == 4 and set(ids) <= {"h3", "h4", "h5", "h6"}
    vector, _, _ = retriever.fold_in(["h2", "h1"])
    for c in found:
        dot = float(retriever.item_factors[retriever.index[c.item.id]] @ vector)
        assert c.score == pytest.approx(dot, abs=1e-4)
        assert c.scores_by_source == {"als": c.score}
        assert c.nearest_history_id in {"h1", "h2"}
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_seen_items_are_never_proposed_whatever_their_rating(retriever: ALSRetriever) -> None:
    history = UserHistory(interactions=[Interaction(item_id=i, rating=r, ts=n) for n, (i, r)
                                        in enumerate([("r1", 5), ("r2", 1), ("r3", 3)])])
    found = retriever.retrieve(history, 21)
    ids = [c.item.id for c in found]
    assert len(ids) == 18 and not set(ids) & {"r1", "r2", "r3"}  # 21 trained items - 3 seen
    assert set(ids[:2]) == {"r4", "r5"}
    assert retriever.retrieve(timed("h6", "s5"), 30)  # more than exist: all that remain
    assert retriever.retrieve(timed("a6"), 5) == []  # a6 has no interactions: no taste
    no_romance = {"genre_Romance": False}
    assert all(c.item.metadata["genre_Romance"] is False
               for c in retriever.retrieve(timed("r1"), 5, where=no_romance))


def test_stored_vectors_are_reused_and_rebuilt_when_training_changes(
    store: CatalogStore, retriever: ALSRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    with monkeypatch.context() as patched:
        patched.setattr(als_module, "train_als", no_training)
        again = ALSRetriever(store, ROWS, **SETTINGS)
    assert np.allclose(again.item_factors, retriever.item_factors)
    ALSRetriever(store, ROWS, **SETTINGS, collection="rebuilt-als")
    more = ALSRetriever(store, [*ROWS, ("x", "a6", 5.0, 1), ("x", "a1", 5.0, 2)], **SETTINGS,
                        collection="rebuilt-als")
    assert more.collection.count() == 22 and "a6" in more.index
    assert "a6" in {c.item.id for c in more.retrieve(timed("a1"), 21)}  # now proposable
    fewer = ALSRetriever(store, ROWS, **{**SETTINGS, "factors": 3}, collection="rebuilt-als")
    assert fewer.collection.count() == 21 and fewer.item_factors.shape == (21, 3)


def test_bad_settings_are_config_errors(store: CatalogStore) -> None:
    with pytest.raises(ConfigError, match="needs training interactions"):
        ALSRetriever(store, [])
    with pytest.raises(ConfigError, match="recency"):
        ALSRetriever(store, ROWS, recency=0.0)
    with pytest.raises(ConfigError, match="factors"):
        ALSRetriever(store, ROWS, factors=0)


def test_different_trainings_never_share_a_collection(
    store: CatalogStore, retriever: ALSRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two trainings at once (a fit's split and the product, two processes): each its own
    digest-named collection, so building one never drops the other's vectors; the oldest
    beyond KEEP are dropped, never the one just written."""
    first = ALSRetriever(store, ROWS, **SETTINGS)
    named = ALSRetriever(store, ROWS, **SETTINGS, collection="catalog-als-mine")
    extra = [(f"z{n}", "a1", 5.0, 1) for n in range(KEEP + 2)]
    others = [ALSRetriever(store, [*ROWS, row], **SETTINGS) for row in extra]
    names = {first.collection.name, *(o.collection.name for o in others)}
    assert len(names) == KEEP + 3
    assert others[-1].retrieve(timed("a1"), 3)  # the newest still answers
    kept = {c.name for c in store.guard._client.list_collections()  # type: ignore[union-attr]
            if c.name.startswith("catalog-als-") and c.name != "catalog-als-mine"}
    assert len(kept) == KEEP and others[-1].collection.name in kept
    assert first.collection.name not in kept  # the oldest went
    assert named.retrieve(timed("a1"), 3)  # one named explicitly is never dropped
