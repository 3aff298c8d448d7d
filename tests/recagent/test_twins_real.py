"""Probe case 10 on the real catalog: MovieLens 100K lists 18 films under two ids. With
one id liked, the other is never recommended, nor named in an explanation as the pick."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from conftest import ML100K, ml100k_home

from recagent.gate import film_key
from recagent.recommender import Recommender
from recagent.types import UserHistory
from retrieval.catalog_files import load_movielens
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory, artifact_store, embedder) -> CatalogStore:  # type: ignore[no-untyped-def]
    home: Path = ml100k_home(tmp_path_factory, artifact_store, embedder)
    return CatalogStore.open(embedder, path=home / "chroma")


def test_the_twin_of_a_liked_film_is_never_recommended(store: CatalogStore) -> None:
    by_film: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for item in load_movielens(ML100K):
        by_film[film_key(item.title)].append(item.id)
    twins = [ids for ids in by_film.values() if len(ids) > 1]
    assert len(twins) >= 18
    recommender = Recommender(store, SemanticRetriever(store), None, n_candidates=20)
    for first, *others in twins:
        rec = recommender.recommend(UserHistory.from_ids([first]), k=10)
        liked = film_key(store.get([first])[first].title)
        assert not {i.item_id for i in rec.items} & set(others)
        assert all(film_key(i.title) != liked for i in rec.items)
        keys = [film_key(i.title) for i in rec.items]
        assert len(keys) == len(set(keys))
