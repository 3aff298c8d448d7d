"""The sequential source over the small real catalog in an embedded Chroma, trained on
hand-made interactions (expected transitions and scores computed by hand)."""

from __future__ import annotations

import math

import pytest

from recagent.errors import ConfigError
from recagent.types import Interaction, Item, UserHistory
from retrieval.embeddings import OnnxEmbedder
from retrieval.sequential import SequentialRetriever
from retrieval.store import CatalogStore

# (user, item, rating, ts), deliberately not in time order. 'ghost' is not in the catalog.
# Sequences, oldest first: u1 h1 h2 h3; u2 h1 h3; u3 a1 a2 (one timestamp: given order)
# then ghost.
ROWS = [("u1", "h3", 4.0, 3), ("u2", "h3", 2.0, 20), ("u1", "h1", 5.0, 1),
        ("u3", "a1", 5.0, 5), ("u1", "h2", 1.0, 2), ("u2", "h1", 3.0, 10),
        ("u3", "a2", 4.0, 5), ("u3", "ghost", 5.0, 6)]
# window 2, step_decay 0.5, raw transitions:
#   h1→h2 1 (u1), h2→h3 1 (u1), h1→h3 0.5 (u1, two steps) + 1 (u2) = 1.5,
#   a1→a2 1, a2→ghost 1, a1→ghost 0.5
# row-normalised: h1: h2 0.4, h3 0.6 | h2: h3 1 | a1: a2 2/3, ghost 1/3 | a2: ghost 1


@pytest.fixture(scope="module")
def store(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> CatalogStore:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("seq") / "chroma")
    store.ingest(mini_items)
    return store


def retriever(store: CatalogStore, **options: float) -> SequentialRetriever:
    settings: dict[str, float] = {"window": 2, "step_decay": 0.5, "decay": 0.5,
                                  "knn_weight": 0.0, **options}
    return SequentialRetriever(store, ROWS, window=int(settings["window"]),
                               step_decay=settings["step_decay"], decay=settings["decay"],
                               knn_weight=settings["knn_weight"])


def timed(*items: str, rating: float = 5.0) -> UserHistory:
    """Items oldest first, each with a timestamp (given out of order on purpose)."""
    interactions = [Interaction(item_id=i, rating=rating, ts=100 + n) for n, i in enumerate(items)]
    return UserHistory(interactions=list(reversed(interactions)))


def test_transitions_follow_time_order_within_the_window(store: CatalogStore) -> None:
    r = retriever(store)
    at = r.similarity.index
    raw = r.transitions.toarray()
    assert raw[at["h1"], at["h2"]] == pytest.approx(1.0)
    assert raw[at["h1"], at["h3"]] == pytest.approx(1.5)
    assert raw[at["h2"], at["h3"]] == pytest.approx(1.0)
    assert raw[at["a1"], at["a2"]] == pytest.approx(1.0)  # a tie keeps the given order
    assert raw[at["a1"], at["ghost"]] == pytest.approx(0.5)
    assert raw[at["h3"]].sum() == 0.0 and raw[at["a2"], at["a1"]] == 0.0  # never backwards
    norm = r.matrix.toarray()  # knn_weight 0: the row-normalised transitions alone
    assert norm[at["h1"], at["h2"]] == pytest.approx(0.4)
    assert norm[at["h1"], at["h3"]] == pytest.approx(0.6)
    assert norm[at["a1"], at["a2"]] == pytest.approx(2 / 3)


def test_recent_items_weigh_more(store: CatalogStore) -> None:
    # a1 older (weight 0.5), h1 the most recent (weight 1)
    found = retriever(store).retrieve(timed("a1", "h1"), 10)
    assert [(c.item.id, c.nearest_history_id) for c in found] == [
        ("h3", "h1"), ("h2", "h1"), ("a2", "a1")]  # ghost is not in the catalog
    assert [c.score for c in found] == pytest.approx([0.6, 0.4, 0.5 * 2 / 3])
    assert all(c.scores_by_source == {"sequential": c.score} for c in found)
    # the other way round, a1's successor comes first
    again = retriever(store).retrieve(timed("h1", "a1"), 10)
    assert [c.item.id for c in again] == ["a2", "h3", "h2"]
    assert [c.score for c in again] == pytest.approx([2 / 3, 0.3, 0.2])


def test_co_occurrence_adds_its_row_normalised_cosine(store: CatalogStore) -> None:
    # users of h1: u1 u2; h2: u1; h3: u1 u2 → cos(h1, h2) = 1/√2, cos(h1, h3) = 1
    found = {c.item.id: c.score for c in retriever(store, knn_weight=1.0).retrieve(
        timed("h1"), 10)}
    row = 1 / math.sqrt(2) + 1.0
    assert found == pytest.approx({"h3": 0.6 + 1.0 / row, "h2": 0.4 + (1 / math.sqrt(2)) / row})


def test_every_seen_item_is_excluded_whatever_its_rating(store: CatalogStore) -> None:
    r = retriever(store)
    history = UserHistory(interactions=[Interaction(item_id="h1", rating=5, ts=1),
                                        Interaction(item_id="h3", rating=1, ts=2),
                                        Interaction(item_id="a1", rating=3, ts=3)])
    found = r.retrieve(history, 10)
    assert [c.item.id for c in found] == ["a2", "h2"]  # h3, disliked, still counts as seen
    assert not {c.item.id for c in found} & history.seen_ids
    assert r.retrieve(timed("s1"), 5) == []  # nothing the training data knows


def test_pairs_without_timestamps_are_in_the_given_order(store: CatalogStore) -> None:
    r = SequentialRetriever(store, [("u", "s1"), ("u", "s2"), ("u", "s3")], window=1,
                            knn_weight=0.0)
    assert [c.item.id for c in r.retrieve(UserHistory.from_ids(["s2"]), 5)] == ["s3"]


def test_where_and_bad_arguments(store: CatalogStore) -> None:
    r = retriever(store)
    no_horror = {"genre_Horror": False}
    assert [c.item.id for c in r.retrieve(timed("a1", "h1"), 10, where=no_horror)] == ["a2"]
    assert [c.item.id for c in r.retrieve(timed("a1", "h1"), 2)] == ["h3", "h2"]
    with pytest.raises(ConfigError, match="history is empty"):
        r.retrieve(UserHistory(interactions=[]), 5)
    with pytest.raises(ConfigError, match="n must be"):
        r.retrieve(timed("h1"), 0)
    for bad in ({"window": 0}, {"decay": 0.0}, {"step_decay": 1.5}, {"knn_weight": -1.0}):
        with pytest.raises(ConfigError):
            retriever(store, **bad)
