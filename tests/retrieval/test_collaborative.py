"""Co-occurrence and popularity retrievers over the small real catalog in an embedded
Chroma, trained on hand-made interactions (expected scores computed by hand)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from recagent.errors import ConfigError
from recagent.types import Candidate, Interaction, Item, UserHistory
from retrieval.collaborative import (
    CoOccurrenceRetriever,
    ItemSimilarity,
    PopularityRetriever,
    RecencyKNNRetriever,
    as_rows,
    sequences,
)
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore
from retrieval.types import Retriever

# 'ghost' is in the training data but not in the catalog: it must never be returned.
# Users per item: h1 4 (u1 u2 u3 u5), ghost 5, h2 2, a1 2, h3 1, a2 1.
PAIRS = [("u1", "h1"), ("u1", "h2"), ("u1", "h3"), ("u2", "h1"), ("u2", "h2"),
         ("u3", "h1"), ("u3", "a1"), ("u4", "a1"), ("u4", "a2"), ("u5", "ghost"),
         ("u5", "h1"), *((f"g{n}", "ghost") for n in range(4))]


@pytest.fixture(scope="module")
def store(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> CatalogStore:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("collab") / "chroma")
    store.ingest(mini_items)
    return store


def history(
    liked: Sequence[str], disliked: Sequence[str] = (), neutral: Sequence[str] = ()
) -> UserHistory:
    return UserHistory(interactions=[Interaction(item_id=i, liked=True) for i in liked]
                       + [Interaction(item_id=i, rating=1) for i in disliked]
                       + [Interaction(item_id=i, rating=3) for i in neutral])


def scores(found: list[Candidate]) -> dict[str, float]:
    return {c.item.id: c.score for c in found}


def test_item_similarity_is_the_cosine_of_co_occurrence() -> None:
    sim = ItemSimilarity([*PAIRS, ("u1", "h1")])  # a repeated pair counts once
    got = sim.scores(["h1"])
    assert got[sim.index["h2"]] == pytest.approx(2 / math.sqrt(4 * 2))
    assert got[sim.index["h3"]] == pytest.approx(1 / math.sqrt(4 * 1))
    assert got[sim.index["ghost"]] == pytest.approx(1 / math.sqrt(4 * 5))
    assert got[sim.index["h1"]] == 0.0 and got[sim.index["a2"]] == 0.0
    assert sim.scores(["unknown"]).sum() == 0.0


def test_co_occurrence_ranks_by_summed_similarity_and_skips_unknown_ids(
    store: CatalogStore,
) -> None:
    found = CoOccurrenceRetriever(store, PAIRS).retrieve(history(["h1"]), 10)
    # ghost (1/√20) co-occurs with h1 but is not in the catalog
    assert [c.item.id for c in found] == ["h2", "h3", "a1"]
    assert [c.score for c in found] == pytest.approx([2 / math.sqrt(8), 0.5, 1 / math.sqrt(8)])
    assert [c.rank for c in found] == [0, 1, 2]
    assert all(c.scores_by_source == {"cooccurrence": c.score} for c in found)
    assert all(c.nearest_history_id == "h1" for c in found)
    assert found[0].item == store.get(["h2"])["h2"]  # the real catalog item
    assert [c.item.id for c in CoOccurrenceRetriever(store, PAIRS).retrieve(
        history(["h1"]), 2)] == ["h2", "h3"]


def test_only_liked_items_vote_and_every_seen_item_is_excluded(store: CatalogStore) -> None:
    retriever = CoOccurrenceRetriever(store, PAIRS)
    # a2 is disliked: it must not lift a1 (sim(a2, a1) = 1/√2), and must not come back
    found = retriever.retrieve(history(["h1"], disliked=["a2"], neutral=["h3"]), 10)
    assert scores(found) == pytest.approx({"h2": 2 / math.sqrt(8), "a1": 1 / math.sqrt(8)})
    # no liked item the training data knows: nothing to say
    assert retriever.retrieve(history(["s1"], neutral=["h1"]), 5) == []


def test_nearest_history_id_is_the_most_similar_liked_item(store: CatalogStore) -> None:
    found = {c.item.id: c for c in CoOccurrenceRetriever(store, PAIRS).retrieve(
        history(["h2", "a2"]), 10)}
    assert found["h1"].nearest_history_id == "h2" and found["a1"].nearest_history_id == "a2"


def test_where_filters_collaborative_candidates(store: CatalogStore) -> None:
    no_horror = {"genre_Horror": False}
    co = CoOccurrenceRetriever(store, PAIRS).retrieve(history(["h1"]), 10, where=no_horror)
    assert [c.item.id for c in co] == ["a1"]
    pop = PopularityRetriever(store, PAIRS).retrieve(history(["a1"]), 10, where=no_horror)
    assert [c.item.id for c in pop] == ["a2"]


def test_popularity_counts_interactions_without_seen_or_unknown_items(
    store: CatalogStore,
) -> None:
    retriever: Retriever = PopularityRetriever(store, PAIRS)
    found = retriever.retrieve(history(["a1"]), 10)
    # ghost (5) is the most popular but not in the catalog; a1 is seen
    assert [(c.item.id, c.score) for c in found] == [("h1", 4.0), ("h2", 2.0), ("h3", 1.0),
                                                      ("a2", 1.0)]
    assert all(c.scores_by_source == {"popularity": c.score} for c in found)
    assert [c.item.id for c in retriever.retrieve(history(["a1"]), 2)] == ["h1", "h2"]


def test_bad_arguments_are_config_errors(store: CatalogStore) -> None:
    for retriever in (CoOccurrenceRetriever(store, PAIRS), PopularityRetriever(store, PAIRS)):
        with pytest.raises(ConfigError, match="history is empty"):
            retriever.retrieve(UserHistory(interactions=[]), 5)
        with pytest.raises(ConfigError, match="n must be"):
            retriever.retrieve(history(["h1"]), 0)


# ---- rows, time order, recency-weighted item-kNN --------------------------------------------


def test_pairs_and_rows_are_both_interactions() -> None:
    assert as_rows([("u", "h1"), ("u", "h2", 4.0, 7)]) == [("u", "h1", None, None),
                                                           ("u", "h2", 4.0, 7)]
    with pytest.raises(ConfigError, match="interaction is"):
        as_rows([("u", "h1", 4.0)])  # type: ignore[list-item]
    # by timestamp; equal timestamps keep the given order; any missing one: the given order
    rows = as_rows([("u", "b", 5.0, 2), ("u", "a", 5.0, 1), ("u", "c", 5.0, 2),
                    ("v", "y", None, 5), ("v", "x", None, None)])
    assert sequences(rows) == {"u": ["a", "b", "c"], "v": ["y", "x"]}


def test_pairs_still_train_the_older_sources_as_before(store: CatalogStore) -> None:
    rows = [(u, i, 5.0, n) for n, (u, i) in enumerate(PAIRS)]
    for cls in (CoOccurrenceRetriever, PopularityRetriever):
        assert scores(cls(store, rows).retrieve(history(["h1"]), 10)) == scores(
            cls(store, PAIRS).retrieve(history(["h1"]), 10))


def test_recency_knn_weighs_recent_items_more(store: CatalogStore) -> None:
    # h2 at ts 1, h1 at ts 2 (most recent: weight 1; h2: 0.5), given newest first
    recent = UserHistory(interactions=[Interaction(item_id="h1", rating=2, ts=2),
                                       Interaction(item_id="h2", rating=5, ts=1)])
    found = RecencyKNNRetriever(store, PAIRS, decay=0.5).retrieve(recent, 10)
    # h3: cos(h1, h3) = 1/√4, cos(h2, h3) = 1/√2 (u1 had both); a1: cos(h1, a1) = 1/√8
    assert [c.item.id for c in found] == ["h3", "a1"]
    assert [c.score for c in found] == pytest.approx([0.5 + 0.5 / math.sqrt(2),
                                                      1 / math.sqrt(8)])
    assert [c.nearest_history_id for c in found] == ["h1", "h1"]  # 0.5 > 0.5 · 0.707
    assert all(c.scores_by_source == {"recency_knn": c.score} for c in found)
    # every interaction votes, a disliked one too (h1 was rated 2), and none comes back
    assert not {c.item.id for c in found} & recent.seen_ids
    # the other order: h2 is the most recent
    other = UserHistory(interactions=[Interaction(item_id="h1", ts=1),
                                      Interaction(item_id="h2", ts=2)])
    again = RecencyKNNRetriever(store, PAIRS, decay=0.5).retrieve(other, 10)
    assert [c.score for c in again] == pytest.approx([0.25 + 1 / math.sqrt(2),
                                                      0.5 / math.sqrt(8)])
    assert again[0].nearest_history_id == "h2"
    with pytest.raises(ConfigError, match="decay"):
        RecencyKNNRetriever(store, PAIRS, decay=0.0)
