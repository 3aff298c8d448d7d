"""The item-side sources in the wiring: llm_text, llm_mapped and text_mapped fused by the
hybrid retriever, and the LLM's catalog pass (the real SmolLM2 in llama.cpp's embedding
mode, integration), cached so that a second pass never starts the model."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.types import Interaction, Item, UserHistory
from recagent.wiring import HybridSpec, LLMSpec, RetrieverSpec, Settings, build_retriever
from recagent.wiring.parts import llm_embedder_name, llm_item_vectors, open_store
from recagent.wiring.product import EVERY_SOURCE
from recagent.wiring.settings import LLM_VECTOR_SOURCES, FitSource, ItemSideSource
from retrieval.hybrid import HybridRetriever
from retrieval.item_map import MappedRetriever
from retrieval.item_vectors import ItemVectorRetriever, NamedEmbedder, embed_catalog

CLUSTERS = {"h": ["h1", "h2", "h3", "h4", "h5"], "a": ["a1", "a2", "a3", "a4", "a5"],
            "s": ["s1", "s2", "s3", "s4", "s5"], "r": ["r1", "r2", "r3", "r4", "r5"]}
ROWS = [(f"{g}{u}", item, 5.0, 10 * u + k) for g, items in CLUSTERS.items()
        for u in range(6) for k, item in enumerate(items[u % 5:] + items[:u % 5])]


@pytest.fixture
def home(tmp_path: Path, artifact_store: ArtifactStore) -> Path:
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    return tmp_path


def spec(**weights: float) -> RetrieverSpec:
    return RetrieverSpec(kind="hybrid", hybrid=HybridSpec.model_validate(
        {"weights": {"semantic": 1.0, **weights}}))


def test_the_fit_weighs_only_its_own_sources() -> None:
    assert set(EVERY_SOURCE.hybrid.weights) == set(get_args(FitSource))
    assert set(LLM_VECTOR_SOURCES) < set(get_args(ItemSideSource))


def test_item_side_sources_fuse_with_the_others(home: Path, mini_items: list[Item]) -> None:
    store = open_store(Settings(home=home), collection="wiring")
    store.ingest(mini_items)
    with pytest.raises(ConfigError, match="needs the LLM's item vectors"):
        build_retriever(spec(llm_text=1.0), store, ROWS)
    # any other embedder's collection stands in for an LLM's here
    vectors = open_store(Settings(home=home), "wiring-vec",
                         embedder=NamedEmbedder(store.embedder, "llamacpp:stand-in:mean"))
    embed_catalog(vectors, mini_items)
    hybrid = build_retriever(spec(llm_text=1.0, llm_mapped=1.0, text_mapped=1.0, als=1.0),
                             store, ROWS, llm_vectors=vectors)
    assert isinstance(hybrid, HybridRetriever)
    assert isinstance(hybrid.sources["llm_text"], ItemVectorRetriever)
    mapped = hybrid.sources["llm_mapped"]
    assert isinstance(mapped, MappedRetriever) and mapped.store is vectors
    text = hybrid.sources["text_mapped"]
    assert isinstance(text, MappedRetriever) and text.als is mapped.als  # one ALS space
    history = UserHistory(interactions=[Interaction(item_id="a1", rating=5, ts=1),
                                        Interaction(item_id="a2", rating=5, ts=2)])
    found = hybrid.retrieve(history, 8)
    assert len(found) == 8 and not {c.item.id for c in found} & history.seen_ids
    by = {s for c in found for s in c.scores_by_source}
    assert {"llm_text", "llm_mapped", "text_mapped", "rrf"} <= by
    lists = {name: [c.item.id for c in got] for name, got in hybrid.gather(history, 5).items()}
    assert "a6" not in lists["als"]  # the cold cartoon: ALS cannot reach it, text can
    # after the three unseen warm cartoons at most
    assert all("a6" in lists[s][:4] for s in ("llm_text", "llm_mapped", "text_mapped"))


@pytest.mark.integration
def test_the_llm_catalog_pass_is_cached_by_model_and_text(
    home: Path, mini_items: list[Item]
) -> None:
    settings = Settings(home=home)
    catalog = open_store(settings, collection="pass")
    catalog.ingest(mini_items)
    llm = LLMSpec(preset="smollm2-135m")
    vectors, first = llm_item_vectors(settings, catalog, mini_items, spec=llm)
    assert first.embedder == llm_embedder_name("smollm2-135m", "mean")
    assert (first.written, first.unchanged) == (24, 0) and vectors.count() == 24
    rows = vectors.vectors([i.id for i in mini_items])
    matrix = np.stack(list(rows.values()))
    assert np.isfinite(matrix).all() and np.allclose(np.linalg.norm(matrix, axis=1), 1.0,
                                                     atol=1e-4)
    assert len({tuple(np.round(r, 5)) for r in matrix}) == 24  # distinct texts, distinct rows
    again, second = llm_item_vectors(settings, catalog, mini_items, spec=llm)
    assert (second.written, second.unchanged) == (0, 24)
    assert again.vectors(["h1"])["h1"] == pytest.approx(rows["h1"])
    _, last = llm_item_vectors(settings, catalog, mini_items, spec=llm, pooling="last")
    assert last.written == 24 and last.collection != first.collection
    history = UserHistory(interactions=[Interaction(item_id="s1", liked=True)])
    found = ItemVectorRetriever(vectors).retrieve(history, 5)
    assert len(found) == 5 and "s1" not in {c.item.id for c in found}

