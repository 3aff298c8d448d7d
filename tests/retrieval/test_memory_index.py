"""The in-memory image against Chroma itself: the same items, vectors, neighbours and
filters after every ingest, and a re-ingest by another writer picked up without restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conftest import make_item

from recagent.types import Item
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore


def _stores(embedder: OnnxEmbedder, tmp_path: Path) -> tuple[CatalogStore, CatalogStore]:
    """The same collection read from memory and straight from Chroma."""
    path = tmp_path / "chroma"
    return (CatalogStore.open(embedder, path=path),
            CatalogStore.open(embedder, path=path, memory=False))


def _assert_agree(memory: CatalogStore, chroma: CatalogStore, ids: list[str]) -> None:
    assert memory.count() == chroma.count() == len(ids)
    assert memory.get(ids) == chroma.get(ids)
    from_memory, from_chroma = memory.vectors(ids), chroma.vectors(ids)
    assert from_memory.keys() == from_chroma.keys() == set(ids)
    for i in ids:
        np.testing.assert_array_equal(from_memory[i], from_chroma[i])
    for where in ({"year": {"$gte": 2000}}, {"$and": [{"genre_Horror": True},
                                                       {"year": {"$lt": 2005}}]}):
        assert memory.get(ids, where=where) == chroma.get(ids, where=where)
    for probe in ids[::5]:
        vector = from_chroma[probe]
        exclude = {probe}
        got = memory.query(vector, 8, exclude=exclude)
        want = chroma.query(vector, 8, exclude=exclude)
        assert [i for i, _, _ in got] == [i for i, _, _ in want]
        np.testing.assert_allclose([s for _, s, _ in got], [s for _, s, _ in want], atol=1e-5)


def test_memory_and_chroma_agree_on_every_item_after_each_ingest(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    memory, chroma = _stores(embedder, tmp_path)
    memory.ingest(mini_items)
    _assert_agree(memory, chroma, [i.id for i in mini_items])

    changed = [i.model_copy(update={"title": i.title + " (restored)", "metadata": {
        **i.metadata, "year": 2020, "director": "Someone New", "rating_count": 7,
        "awarded": True, "score": 0.5}}) for i in mini_items[:6]]
    memory.ingest(changed)
    _assert_agree(memory, chroma, [i.id for i in mini_items])
    assert memory.get([changed[0].id])[changed[0].id] == changed[0]  # any keys ride through


def test_a_reingest_by_another_writer_is_served_at_once(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    reader, _ = _stores(embedder, tmp_path)
    writer = CatalogStore.open(embedder, path=tmp_path / "chroma")  # as another process
    writer.ingest(mini_items)
    first = mini_items[0]
    assert reader.get([first.id])[first.id] == first
    assert reader.memory is not None
    loads = reader.memory.loads

    renamed = first.model_copy(update={"title": "Renamed", "text": "A wholly new text."})
    added = make_item("new-1", "Brand New (2024)", "Sci-Fi", "a new film", 2024)
    writer.ingest([renamed, added])
    assert reader.get([first.id, added.id]) == {first.id: renamed, added.id: added}
    hits = reader.query(writer.vectors([added.id])[added.id], 1)
    assert hits[0][0] == added
    assert reader.count() == len(mini_items) + 1
    assert reader.memory.loads == loads + 1  # one reload, then served from memory

    writer.ingest([renamed, added])  # nothing changes: no reload
    reader.get([first.id])
    assert reader.memory.loads == loads + 1


def test_a_filter_is_asked_of_chroma_once_per_image(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path, monkeypatch: Any
) -> None:
    store, _ = _stores(embedder, tmp_path)
    store.ingest(mini_items)
    assert store.memory is not None
    calls: list[Any] = []
    real = store.memory._ids_where
    monkeypatch.setattr(store.memory, "_ids_where", lambda where: calls.append(where) or
                        real(where))
    where = {"year": {"$gte": 2005}}
    first = store.get([i.id for i in mini_items], where=where)
    again = store.get([i.id for i in mini_items], where=where)
    assert first == again and first
    assert all(int(i.metadata["year"]) >= 2005 for i in first.values())
    assert calls == [where]
