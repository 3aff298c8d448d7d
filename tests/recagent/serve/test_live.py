"""The running service picks up a re-ingest and a fit without a restart: no stale item is
served, and new interactions and fitted weights take effect on the next request."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recagent.fit import FittedConfig, save_fitted
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.serve.app import create_app
from recagent.serve.runner import ServeOptions, open_service
from recagent.types import Item
from recagent.wiring import Settings, open_interactions, open_store
from recagent.wiring.parts import catalog_stamp
from retrieval.hybrid import HybridRetriever
from retrieval.interactions import InteractionRow

LIKED = [{"item_id": "s1", "liked": True}, {"item_id": "s4", "rating": 5}]


@pytest.fixture
def home(tmp_path: Path, artifact_store: ArtifactStore) -> Path:
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    return tmp_path


def _rows(users: range, items: list[str]) -> list[InteractionRow]:
    return [InteractionRow(user=f"u{u}", item=i, rating=5.0, liked=None, ts=n)
            for u in users for n, i in enumerate(items)]


def test_a_reingest_and_a_fit_are_served_without_a_restart(
        home: Path, mini_items: list[Item]) -> None:
    settings = Settings(home=home, ranker=None, n_candidates=10)
    writer = open_store(settings, memory=False)  # as `recagent ingest` in another process
    assert catalog_stamp(settings).path == writer.guard.stamp.path
    writer.ingest(mini_items)
    db = open_interactions(settings)
    db.ingest(settings.collection, _rows(range(6), ["s1", "s4", "s2", "s3"]))

    with open_service(settings, ServeOptions()) as (service, _), \
            TestClient(create_app(service), base_url="http://127.0.0.1:8000") as client:
        first = client.post("/v1/recommend", json={"history": LIKED, "k": 5}).json()
        shown = {i["item_id"]: i["title"] for i in first["items"]}
        assert {"s2", "s3"} <= set(shown)  # what the interactions say goes with s1, s4
        assert not {"h1", "h2"} & set(shown)  # horror: far from s1 and s4 in every way

        renamed = {i.id: i.model_copy(update={"title": f"Renamed {i.id}"})
                   for i in mini_items if i.id in shown}
        writer.ingest(list(renamed.values()))
        again = client.post("/v1/recommend", json={"history": LIKED, "k": 5}).json()
        titles = {i["item_id"]: i["title"] for i in again["items"]}
        assert titles == {i: renamed[i].title for i in titles}  # no stale record served

        before = service.engine.recommender
        db.ingest(settings.collection, _rows(range(10, 40), ["s1", "s4", "h1", "h2"]))
        after = client.post("/v1/recommend", json={"history": LIKED, "k": 5}).json()
        assert service.engine.recommender is not before  # rebuilt from the new rows
        assert {"h1", "h2"} <= {i["item_id"] for i in after["items"]}

        rebuilt = service.engine.recommender
        save_fitted(home, FittedConfig(
            collection=settings.collection, retrieval_weights={"semantic": 1.0},
            rerank_weights={}, llm_model=None, llm_share=0.0, validation_users=1,
            validation={}, interactions=1, fitted_at="now"))
        assert client.post("/v1/recommend", json={"history": LIKED, "k": 2}).status_code == 200
        assert service.engine.recommender is not rebuilt
        retriever = service.engine.recommender.retriever
        assert isinstance(retriever, HybridRetriever) and set(retriever.sources) == {"semantic"}
