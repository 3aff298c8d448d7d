"""CatalogStore against a real embedded Chroma (and a real `chroma run` server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.api.models.Collection import Collection
from conftest import CountingEmbedder, make_item

from recagent.errors import ConfigError
from recagent.types import IngestReport, Item
from retrieval import ingest_guard
from retrieval.embeddings import OnnxEmbedder
from retrieval.errors import IncompleteCatalogError
from retrieval.store import SEARCH_EF, CatalogStore


def _open(embedder: Any, tmp_path: Path) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path / "chroma")


def _state(store: CatalogStore) -> dict[str, tuple[str | None, dict[str, Any], list[float]]]:
    """Everything the collection holds, to compare before and after."""
    got = store.collection.get(include=["documents", "metadatas", "embeddings"])
    embeddings = got["embeddings"] if got["embeddings"] is not None else []
    return {
        i: (doc, dict(md or {}), np.asarray(e).round(6).tolist())
        for i, doc, md, e in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], embeddings, strict=True
        )
    }


@pytest.fixture
def spy_upsert(monkeypatch: pytest.MonkeyPatch) -> Callable[[int | None], list[int]]:
    """Record every upsert at the Chroma boundary; optionally fail on the n-th call.

    The failing call first writes half its batch, as a crash inside a write might.
    """

    def install(fail_on: int | None = None) -> list[int]:
        calls: list[int] = []
        real = Collection.upsert

        def upsert(self: Collection, **kwargs: Any) -> None:
            calls.append(len(kwargs["ids"]))
            if len(calls) == fail_on:
                half = len(kwargs["ids"]) // 2
                real(self, **{k: v[:half] for k, v in kwargs.items()})
                raise RuntimeError("disk full (simulated)")
            real(self, **kwargs)

        monkeypatch.setattr(Collection, "upsert", upsert)
        return calls

    return install


def test_ingest_then_reingest_writes_nothing(
    counting_embedder: CountingEmbedder,
    mini_items: list[Item],
    tmp_path: Path,
    spy_upsert: Callable[[int | None], list[int]],
) -> None:
    store = _open(counting_embedder, tmp_path)
    report = store.ingest(mini_items, batch_size=10)
    assert report == IngestReport(added=24, updated=0, unchanged=0, total=24)
    assert store.count() == 24
    assert counting_embedder.embedded == 24

    writes = spy_upsert(None)
    again = store.ingest(mini_items)
    assert again == IngestReport(added=0, updated=0, unchanged=24, total=24)
    assert writes == [] and counting_embedder.embedded == 24


def test_changed_items_are_updated_and_only_changed_texts_reembedded(
    counting_embedder: CountingEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(counting_embedder, tmp_path)
    store.ingest(mini_items)
    before = store.vectors(["h1", "a1"])
    retitled = mini_items[0].model_copy(update={"title": "Hill House", "text": "Hill House."})
    regenred = mini_items[6].model_copy(
        update={"metadata": {**mini_items[6].metadata, "genres": "Animation|Comedy"}}
    )
    extra = make_item("x1", "Alien", "Sci-Fi", "A monster hunts the crew of a spaceship.")
    report = store.ingest([retitled, regenred, *mini_items[1:6], extra])
    assert report == IngestReport(added=1, updated=2, unchanged=5, total=8)
    assert counting_embedder.calls[-1] == 2  # the new text and the new item; a1's text is the same
    got = store.get(["h1", "a1", "x1"])
    assert got == {"h1": retitled, "a1": regenred, "x1": extra}
    after = store.vectors(["h1", "a1"])
    np.testing.assert_allclose(after["a1"], before["a1"])
    assert float(after["h1"] @ before["h1"]) < 0.99
    assert store.count() == 25


def test_items_round_trip_exactly(embedder: OnnxEmbedder, tmp_path: Path) -> None:
    odd = Item(
        id="é/1 x",
        title="Misérables, Les (1995)",
        text="Misérables, Les (1995). Genres: Drama.",
        metadata={"title": "Misérables, Les", "year": 1995, "score": 0.1, "big": 2**40,
                  "flag": False, "genre_Children's": True, "genres": "Drama|Musical"},
    )  # fmt: skip
    plain = Item(id="2", title="No metadata", text="")
    store = _open(embedder, tmp_path)
    store.ingest([odd, plain])
    assert store.get(["2", "missing", "é/1 x", "2"]) == {"2": plain, "é/1 x": odd}
    assert list(store.get(["é/1 x", "2"])) == ["é/1 x", "2"]
    # and again from a fresh client on the same folder: the data is on disk
    reopened = _open(embedder, tmp_path)
    assert reopened.count() == 2 and reopened.get(["é/1 x"])["é/1 x"] == odd


def test_vectors_are_the_embeddings_of_the_texts(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items[:4])
    vectors = store.vectors(["h2", "nope", "h1"])
    assert list(vectors) == ["h2", "h1"]
    expected = embedder.embed([mini_items[1].text, mini_items[0].text])
    np.testing.assert_allclose(np.stack(list(vectors.values())), expected, atol=1e-5)


def test_failure_midway_leaves_the_collection_as_it_was(
    embedder: OnnxEmbedder,
    mini_items: list[Item],
    tmp_path: Path,
    spy_upsert: Callable[[int | None], list[int]],
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items[:12])
    before = _state(store)
    # 4 changed and 12 new items, written 5 at a time; the 2nd batch fails halfway, after
    # the 1st (4 changed, 1 new) and part of the 2nd were written
    changed = [i.model_copy(update={"text": i.text + " Remastered."}) for i in mini_items[:3]]
    changed.append(mini_items[3].model_copy(update={"metadata": {"year": 1}}))
    batch = [*changed, *mini_items[12:]]
    marker = store.guard.metadata()
    calls = spy_upsert(2)
    with pytest.raises(RuntimeError, match="disk full"):
        store.ingest(batch, batch_size=5)
    assert calls[:2] == [5, 5]
    assert _state(store) == before
    assert store.guard.metadata() == marker  # the completion marker is restored too
    store.check_complete()

    spy_upsert(None)  # the next attempt succeeds and sees the same work to do
    report = store.ingest(batch, batch_size=5)
    assert report == IngestReport(added=12, updated=4, unchanged=0, total=16)
    assert store.get([changed[0].id])[changed[0].id] == changed[0]


def test_bad_input_is_refused_before_any_write(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    with pytest.raises(ConfigError, match="more than once"):
        store.ingest([mini_items[0], mini_items[1], mini_items[0]])
    reserved = Item(id="z", title="Z", text="z", metadata={"_ra_hash": "x"})
    with pytest.raises(ConfigError, match="reserved"):
        store.ingest([mini_items[0], reserved])
    assert store.count() == 0


def test_query_never_returns_excluded_and_fills_up_to_n(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items)
    [query] = embedder.embed(["ghosts haunt a house"])
    everything = store.query(query, 100)
    assert len(everything) == 24
    scores = [s for _, s, _ in everything]
    assert scores == sorted(scores, reverse=True)
    top = [item.id for item, _, _ in everything[:8]]
    assert set(top[:3]) <= {"h1", "h5", "h6"} | {"h2", "h3", "h4"}

    # excluding the 8 best still gives exactly n, none of them excluded
    hits = store.query(query, 10, exclude=set(top))
    assert len(hits) == 10 and not {i.id for i, _, _ in hits} & set(top)
    assert [i.id for i, _, _ in hits] == [i.id for i, _, _ in everything[8:18]]

    # fewer available than asked: all that remain, never more
    keep = {"r1", "s2", "a3"}
    hits = store.query(query, 10, exclude={i.id for i in mini_items} - keep)
    assert {i.id for i, _, _ in hits} == keep

    # scores are cosine similarities and the vectors are the stored ones
    item, score, vector = hits[0]
    assert score == pytest.approx(float(query @ vector), abs=1e-4)
    np.testing.assert_allclose(vector, store.vectors([item.id])[item.id])


def test_equal_scores_are_ordered_by_id_also_across_the_cut(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    # duplicate items (ML-100K lists some films twice) share a text, so a vector
    twins = [Item(id=i, title="Alien (1979)", text="Alien (1979). Genres: Sci-Fi.")
             for i in ("twin-z", "twin-a", "twin-m")]  # written in this order
    store = _open(embedder, tmp_path)
    store.ingest([*mini_items, *twins])
    vector = store.vectors(["twin-z"])["twin-z"]
    assert [i.id for i, _, _ in store.query(vector, 3)] == ["twin-a", "twin-m", "twin-z"]
    assert [i.id for i, _, _ in store.query(vector, 1)] == ["twin-a"]
    assert [i.id for i, _, _ in store.query(vector, 1, exclude={"twin-a"})] == ["twin-m"]


def test_query_with_metadata_filter(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items)
    [query] = embedder.embed(["ghosts haunt a house"])
    hits = store.query(query, 10, where={"genre_Horror": False}, exclude={"r1"})
    assert len(hits) == 10
    assert all(i.metadata["genre_Horror"] is False and i.id != "r1" for i, _, _ in hits)
    horror = store.query(query, 10, where={"genre_Horror": True}, exclude={"h1"})
    assert sorted(i.id for i, _, _ in horror) == ["h2", "h3", "h4", "h5", "h6"]
    assert store.query(query, 3, where={"year": {"$gt": 3000}}) == []


def test_open_arguments_and_embedder_mismatch(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        CatalogStore.open(embedder)
    with pytest.raises(ConfigError, match="exactly one"):
        CatalogStore.open(embedder, path=tmp_path, url="http://localhost:8000")
    with pytest.raises(ConfigError, match="http://host:port"):
        CatalogStore.open(embedder, url="localhost:8000")
    with pytest.raises(ConfigError, match="cannot open"):
        CatalogStore.open(embedder, path=tmp_path / "c", name="x")  # too short for Chroma

    with pytest.raises(ConfigError, match="search_ef"):
        CatalogStore.open(embedder, path=tmp_path / "chroma", search_ef=0)

    _open(embedder, tmp_path).ingest(mini_items[:2])
    # an existing collection is switched to the search depth asked for (SEARCH_EF)
    shallow = CatalogStore.open(embedder, path=tmp_path / "chroma", search_ef=50)
    assert shallow.search_ef == 50
    assert _open(embedder, tmp_path).search_ef == SEARCH_EF

    class Other(CountingEmbedder):
        @property
        def name(self) -> str:
            return "other-model"

    with pytest.raises(ConfigError, match=r"holds vectors of 'onnx:all-MiniLM-L6-v2\.int8'"):
        _open(Other(embedder), tmp_path)


def test_unreachable_server_is_a_config_error(embedder: OnnxEmbedder) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        CatalogStore.open(embedder, url="http://127.0.0.1:9")


@pytest.mark.integration
def test_against_a_chroma_server(
    embedder: OnnxEmbedder, mini_items: list[Item], chroma_server: str
) -> None:
    store = CatalogStore.open(embedder, url=chroma_server, name="server-test")
    assert store.ingest(mini_items, batch_size=7).added == 24
    assert store.ingest(mini_items).unchanged == 24
    shallow = CatalogStore.open(embedder, url=chroma_server, name="server-test", search_ef=50)
    assert shallow.search_ef == 50  # switched over HTTP, and back on the next open
    again = CatalogStore.open(embedder, url=chroma_server, name="server-test")
    assert again.count() == 24 and again.search_ef == SEARCH_EF
    assert again.get(["s1", "r2"]) == {"s1": mini_items[12], "r2": mini_items[19]}
    [query] = embedder.embed(["astronauts in a spaceship"])
    hits = again.query(query, 5, exclude={"s2", "s3", "s6"})
    ids = [i.id for i, _, _ in hits]
    assert len(ids) == 5 and not {"s2", "s3", "s6"} & set(ids)
    assert ids[0] in {"s1", "s4", "s5"}


def test_an_ingest_marks_the_collection_complete_last(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _open(embedder, tmp_path)
    store.check_complete()  # a new, empty collection has no marker yet: nothing to refuse
    seen: list[object] = []
    real = Collection.upsert

    def upsert(self: Collection, **kwargs: Any) -> None:
        seen.append(store.guard.metadata().get(ingest_guard.STATE_KEY))
        real(self, **kwargs)

    monkeypatch.setattr(Collection, "upsert", upsert)
    store.ingest(mini_items, batch_size=10)
    assert seen == ["incomplete"] * 3  # every write happens under the "incomplete" marker
    marker = store.guard.metadata()
    assert marker[ingest_guard.STATE_KEY] == "complete"
    assert marker[ingest_guard.ITEMS_KEY] == 24
    assert marker["embedder"] == embedder.name  # the rest of the metadata is kept
    store.check_complete()
    # a re-ingest of the same input changes nothing, the marker included
    store.ingest(mini_items)
    assert store.guard.metadata() == marker and len(seen) == 3


def test_an_interrupted_ingest_is_rolled_back_marker_and_all(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items[:6])
    before, marker = _state(store), store.guard.metadata()
    calls: list[int] = []
    real = Collection.upsert

    def upsert(self: Collection, **kwargs: Any) -> None:
        calls.append(len(kwargs["ids"]))
        real(self, **kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C between two batches

    monkeypatch.setattr(Collection, "upsert", upsert)
    with pytest.raises(KeyboardInterrupt):
        store.ingest(mini_items, batch_size=5)
    assert _state(store) == before and store.guard.metadata() == marker
    store.check_complete()


def test_check_complete_refuses_an_unfinished_ingest(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    store.ingest(mini_items)
    complete = store.guard.metadata()

    legacy = {k: v for k, v in complete.items() if not k.startswith("ingest")}
    store.guard.set_metadata(legacy)  # made before markers existed: counts as complete
    store.check_complete()

    store.guard.set_metadata(ingest_guard.marked_incomplete(complete))
    with pytest.raises(IncompleteCatalogError, match=r"'catalog' is incomplete.*re-run the "
                       r"ingest") as refused:
        _open(embedder, tmp_path).check_complete()
    assert isinstance(refused.value, ConfigError)

    store.guard.set_metadata({**complete, ingest_guard.ITEMS_KEY: 30})
    with pytest.raises(IncompleteCatalogError, match="holds 24 items, fewer than the 30"):
        store.check_complete()

    # the next ingest completes it again
    assert store.ingest(mini_items).unchanged == 24
    store.check_complete()


def test_lock_timeout_must_not_be_negative(
    embedder: OnnxEmbedder, mini_items: list[Item], tmp_path: Path
) -> None:
    store = _open(embedder, tmp_path)
    with pytest.raises(ConfigError, match="lock_timeout_s"):
        store.ingest(mini_items, lock_timeout_s=-1)
    assert store.count() == 0
    assert store.guard.lock.path == tmp_path / "chroma" / "catalog.ingest.lock"
