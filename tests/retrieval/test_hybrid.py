"""Weighted reciprocal-rank fusion on hand-made rankings, and the hybrid retriever over the
small real catalog: seen items never return, an item nobody interacted with is reachable."""

from __future__ import annotations

from typing import Any

import pytest

from recagent.errors import ConfigError
from recagent.types import Candidate, Interaction, Item, UserHistory
from retrieval.collaborative import CoOccurrenceRetriever, PopularityRetriever
from retrieval.embeddings import OnnxEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from retrieval.types import Retriever

ITEMS = {i: Item(id=i, title=i.upper(), text=i) for i in "wxyz"}
H = UserHistory.from_ids(["h"])


class Fixed:
    """A source with a fixed ranking; records what it was asked."""

    def __init__(self, ids: str, nearest: str | None = None) -> None:
        self.ids = ids
        self.nearest = nearest
        self.asked: list[tuple[int, Any]] = []

    def retrieve(
        self, history: UserHistory, n: int = 20, *, where: dict[str, Any] | None = None
    ) -> list[Candidate]:
        self.asked.append((n, where))
        return [Candidate(item=ITEMS[i], rank=r, score=10.0 - r, nearest_history_id=self.nearest)
                for r, i in enumerate(self.ids[:n])]


def test_weighted_rrf_by_hand() -> None:
    semantic, co = Fixed("xyz", nearest="h-sem"), Fixed("zwx", nearest="h-co")
    hybrid = HybridRetriever({"semantic": semantic, "cooccurrence": co},
                             {"semantic": 2.0, "cooccurrence": 1.0}, k_rrf=0, depth=7)
    got = hybrid.retrieve(H, 10, where={"genre": "x"})
    # x = 2/1 + 1/3, z = 2/3 + 1/1, y = 2/2, w = 1/2
    assert [c.item.id for c in got] == ["x", "z", "y", "w"]
    assert [c.score for c in got] == pytest.approx([7 / 3, 5 / 3, 1.0, 0.5])
    assert [c.rank for c in got] == [0, 1, 2, 3]
    assert got[0].scores_by_source == pytest.approx(
        {"semantic": 10.0, "cooccurrence": 8.0, "rrf": 7 / 3})
    assert got[3].scores_by_source == pytest.approx({"cooccurrence": 9.0, "rrf": 0.5})
    # nearest history item: the semantic source's when it proposed the item
    assert [c.nearest_history_id for c in got] == ["h-sem", "h-sem", "h-sem", "h-co"]
    # every source is asked for max(depth, n) items, with the filter
    assert semantic.asked == [(10, {"genre": "x"})] and co.asked == [(10, {"genre": "x"})]
    assert [c.item.id for c in hybrid.retrieve(H, 2)] == ["x", "z"]
    assert semantic.asked[-1] == (7, None)


def test_default_weights_and_k_and_ties_keep_first_proposal() -> None:
    got = HybridRetriever({"a": Fixed("xyz"), "b": Fixed("zwx")}).retrieve(H, 4)
    # k = 60: x = 1/61 + 1/63 = z, y = 1/62 = w; x and y were proposed first
    assert [c.item.id for c in got] == ["x", "z", "y", "w"]
    assert got[0].score == pytest.approx(1 / 61 + 1 / 63)
    assert got[2].score == pytest.approx(1 / 62) and got[3].score == pytest.approx(1 / 62)


def test_a_zero_weight_source_is_not_asked() -> None:
    unused = Fixed("w")
    got = HybridRetriever({"a": Fixed("xy"), "b": unused}, {"b": 0.0}).retrieve(H, 5)
    assert [c.item.id for c in got] == ["x", "y"] and unused.asked == []


@pytest.mark.parametrize(("weights", "message"), [
    ({"a": -1.0}, "finite and >= 0"),
    ({"a": float("nan")}, "finite and >= 0"),
    ({"c": 1.0}, "unknown sources"),
    ({"a": 0.0, "b": 0.0}, "all fusion weights are 0"),
])
def test_bad_weights_are_config_errors(weights: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HybridRetriever({"a": Fixed("x"), "b": Fixed("y")}, weights)


def test_bad_sources_and_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least one source"):
        HybridRetriever({})
    with pytest.raises(ConfigError, match="reserved"):
        HybridRetriever({"rrf": Fixed("x")})
    with pytest.raises(ConfigError, match="k_rrf"):
        HybridRetriever({"a": Fixed("x")}, k_rrf=-1)
    with pytest.raises(ConfigError, match="depth"):
        HybridRetriever({"a": Fixed("x")}, depth=0)
    with pytest.raises(ConfigError, match="n must be"):
        HybridRetriever({"a": Fixed("x")}).retrieve(H, 0)


# ---- over the real catalog ---------------------------------------------------------------

# Interactions cover only horror and animation items (and 'ghost', not in the catalog):
# no sci-fi or romance item has ever been interacted with.
PAIRS = [(f"u{n}", i) for n, items in enumerate(
    [["h1", "h2", "a1"], ["h1", "h2"], ["h2", "h3", "ghost"], ["a1", "a2"], ["ghost"]])
    for i in items]


@pytest.fixture(scope="module")
def sources(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Retriever]:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("hybrid") / "chroma")
    store.ingest(mini_items)
    return {"semantic": SemanticRetriever(store),
            "cooccurrence": CoOccurrenceRetriever(store, PAIRS),
            "popularity": PopularityRetriever(store, PAIRS)}


@pytest.fixture
def hybrid(sources: dict[str, Retriever]) -> HybridRetriever:
    return HybridRetriever(sources, {"popularity": 0.5}, depth=30)


def test_an_item_without_interactions_is_reachable_through_its_text(
    sources: dict[str, Retriever],
) -> None:
    liked_space = UserHistory.from_ids(["s1"])
    # The source lists are as long as the catalog here, so every unseen item is in the
    # fusion; items that two sources propose outrank those of one source.
    deep = HybridRetriever(sources, {"popularity": 0.5}, depth=30).retrieve(liked_space, 23)
    space = [c for c in deep if c.item.id.startswith("s")]
    assert len(space) == 5
    assert all(set(c.scores_by_source) == {"semantic", "rrf"} for c in space)
    assert all(c.nearest_history_id == "s1" for c in space)  # from the semantic source
    # With lists shorter than the catalog, the text neighbours lead: semantic's top 5 (no
    # interactions, mostly sci-fi) score at least 1/65, popularity's at most 0.5/61.
    shallow = HybridRetriever(sources, {"popularity": 0.5}, depth=5).retrieve(liked_space, 5)
    text_top = [c.item.id for c in sources["semantic"].retrieve(liked_space, 5)]
    assert [c.item.id for c in shallow] == text_top
    assert sum(i.startswith("s") for i in text_top) >= 3


def test_seen_and_unknown_items_never_come_back(hybrid: HybridRetriever) -> None:
    seen = {"h1", "a2", "s1", "r1"}
    history = UserHistory(interactions=[
        Interaction(item_id="h1", liked=True), Interaction(item_id="s1", liked=True),
        Interaction(item_id="a2", rating=1), Interaction(item_id="r1", rating=3)])
    for n in (1, 5, 50):
        got = hybrid.retrieve(history, n)
        ids = [c.item.id for c in got]
        assert len(ids) == min(n, 20) == len(set(ids))  # 24 items, 4 seen
        assert not seen & set(ids) and "ghost" not in ids
        assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
