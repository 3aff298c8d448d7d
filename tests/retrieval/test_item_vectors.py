"""Item vectors of another embedder in their own collection: one pass over the catalog,
cached by embedder name and item text (real Chroma, the real MiniLM under other names)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from recagent.errors import ConfigError
from recagent.types import Interaction, Item, UserHistory
from retrieval.embeddings import Embedder, OnnxEmbedder
from retrieval.item_vectors import (
    ItemVectorRetriever,
    LazyEmbedder,
    NamedEmbedder,
    all_vectors,
    embed_catalog,
    vector_collection,
)
from retrieval.store import CatalogStore
from tests.conftest import CountingEmbedder

CHROMA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$")


def test_collection_names_are_valid_and_distinct_per_embedder() -> None:
    names = [vector_collection("eval-ml-100k", e) for e in (
        "llamacpp:smollm2-135m:mean", "llamacpp:smollm2-135m:last",
        "llamacpp:qwen2.5-coder-0.5b:mean", "onnx:all-MiniLM-L6-v2.int8", "::")]
    assert len(set(names)) == len(names)
    assert all(CHROMA_NAME.match(n) and n.startswith("eval-ml-100k-vec-") for n in names)
    assert "smollm2-135m-mean" in names[0]


def open_vectors(root: Path, embedder: Embedder) -> CatalogStore:
    return CatalogStore.open(embedder, path=root / "chroma",
                             name=vector_collection("catalog", embedder.name))


def test_a_pass_embeds_each_item_once_and_only_changed_texts_again(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    counting = CountingEmbedder(embedder)
    store = open_vectors(tmp_path, NamedEmbedder(counting, "llamacpp:fake:mean"))
    first = embed_catalog(store, mini_items)
    assert (first.items, first.written, first.unchanged) == (24, 24, 0)
    assert counting.embedded == 24
    assert first.full_pass_seconds == first.seconds and first.full_pass_items == 24
    assert first.seconds_per_item == pytest.approx(first.seconds / 24)
    second = embed_catalog(store, mini_items)
    assert (second.written, second.unchanged) == (0, 24) and counting.embedded == 24
    # a cached pass still tells what the full one cost: it is kept with the collection
    assert second.full_pass_seconds == first.seconds
    assert second.seconds_per_item == first.seconds_per_item
    edited = [*mini_items[:-1], mini_items[-1].model_copy(update={"text": "Another text."})]
    third = embed_catalog(store, edited)
    assert (third.written, third.unchanged) == (1, 23) and counting.embedded == 25
    assert third.full_pass_seconds == first.seconds  # a partial pass is not a full one
    store.check_complete()  # the record leaves the ingest's completion marker alone
    assert store.collection.name != "catalog" and store.count() == 24


def test_another_embedder_name_never_reuses_the_vectors(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    embed_catalog(open_vectors(tmp_path, NamedEmbedder(embedder, "llamacpp:a:mean")),
                  mini_items)
    other = open_vectors(tmp_path, NamedEmbedder(embedder, "llamacpp:a:last"))
    assert other.count() == 0
    assert embed_catalog(other, mini_items).written == 24


def test_a_lazy_embedder_starts_only_when_something_needs_embedding(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    starts: list[int] = []

    def make() -> Embedder:
        starts.append(1)
        return embedder

    lazy = LazyEmbedder("llamacpp:lazy:mean", make)
    store = open_vectors(tmp_path, lazy)
    assert not lazy.started
    embed_catalog(store, mini_items[:10])
    assert lazy.started and starts == [1] and lazy.embedded == 10

    def refuse() -> Embedder:
        raise AssertionError("started although every vector was cached")

    cached = LazyEmbedder("llamacpp:lazy:mean", refuse)
    done = embed_catalog(open_vectors(tmp_path, cached), mini_items[:10])
    assert done.written == 0 and not cached.started


def test_all_vectors_reads_every_row_in_id_order(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = open_vectors(tmp_path, embedder)
    with pytest.raises(ConfigError, match="no vectors"):
        all_vectors(store)
    embed_catalog(store, mini_items)
    ids, matrix = all_vectors(store)
    assert ids == sorted(i.id for i in mini_items) and matrix.shape == (24, 384)
    assert np.allclose(matrix[ids.index("s1")], store.vectors(["s1"])["s1"])


def test_the_retriever_ranks_by_these_vectors_under_its_own_source(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = open_vectors(tmp_path, NamedEmbedder(embedder, "llamacpp:b:mean"))
    embed_catalog(store, mini_items)
    history = UserHistory(interactions=[Interaction(item_id="s1", liked=True),
                                        Interaction(item_id="s2", liked=True)])
    found = ItemVectorRetriever(store, source="llm_text").retrieve(history, 4)
    assert [c.item.id for c in found if c.item.id in history.seen_ids] == []
    assert all(c.scores_by_source == {"llm_text": c.score} for c in found)
    assert sum(c.item.id.startswith("s") for c in found) >= 3
    assert found[0].item == next(i for i in mini_items if i.id == found[0].item.id)


class _Fixed:
    """An embedder that must never be asked (the store only reads)."""

    name = "fixed"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("no embedding at query time")


def test_retrieval_embeds_nothing_at_query_time(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    embed_catalog(open_vectors(tmp_path, NamedEmbedder(embedder, "fixed")), mini_items)
    reader = open_vectors(tmp_path, _Fixed())
    history = UserHistory(interactions=[Interaction(item_id="h1", liked=True)])
    assert len(ItemVectorRetriever(reader).retrieve(history, 3)) == 3
