"""A real vLLM server (CPU build, from .venv-vllm) with SmolLM2-135M, through OpenAIClient.

`make test` builds .venv-vllm first; without it these tests fail rather than skip, so a
broken vLLM environment can never pass unnoticed. The server starts once, for this
module, from the preset's GGUF converted once per session into .cache/vllm-models
(conftest.py); it is stopped before tests/test_vllm_cli.py starts its own, so that two
servers (~4 GB of memory each) never run at once.

What is checked holds for any model: the JSON schema makes the listwise answer
validate on the first try, logprobs score every candidate, and concurrent requests
are all served. No wording, no timings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recagent.llm.backends.vllm_model import PreparedModel, VLLMModelPreparer
from recagent.llm.backends.vllm_server import VLLMServer, usable_cores
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.likelihood import LikelihoodRanker
from recagent.rank.listwise import ListwiseRanker, RankingAnswer, labels_for
from recagent.rank.logprob import LogprobRanker
from recagent.recommender import Recommender
from recagent.types import Candidate, Interaction, Item, UserHistory
from retrieval.embeddings import OnnxEmbedder
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore

pytestmark = pytest.mark.vllm

PRESET = "smollm2-135m"


@pytest.fixture(scope="module")
def vllm_server(vllm_prepared: PreparedModel, vllm_python: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    with VLLMServer(python=vllm_python, model=str(vllm_prepared.folder), served_model_name=PRESET,
                    cpu_cores=usable_cores(), log_path=log) as server:
        yield server


@pytest.fixture(scope="module")
def client(vllm_server: VLLMServer) -> OpenAIClient:
    return OpenAIClient(base_url=vllm_server.base_url, model=vllm_server.model, timeout_s=300)


@pytest.fixture(scope="module")
def recommender(embedder: OnnxEmbedder, mini_items: list[Item], client: OpenAIClient,
                tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("chroma"), name="mini")
    store.ingest(mini_items)
    return Recommender(store, SemanticRetriever(store), ListwiseRanker(client, PromptLibrary()),
                       n_candidates=10)


def candidates_from(items: list[Item], n: int) -> list[Candidate]:
    return [Candidate(item=item, rank=r, score=1.0 - r / n) for r, item in enumerate(items[:n])]


def horror_fan(mini_items: list[Item]) -> list[tuple[Interaction, Item]]:
    by_id = {i.id: i for i in mini_items}
    return [(Interaction(item_id=i, liked=True, ts=n), by_id[i])
            for n, i in enumerate(["h1", "h2"])]


def test_the_prepared_folder_is_a_dequantised_hf_model_and_is_reused(
    vllm_prepared: PreparedModel, vllm_preparer: VLLMModelPreparer
) -> None:
    config = json.loads((vllm_prepared.folder / "config.json").read_text())
    assert "quantization_config" not in config  # else vLLM looks for GGUF weights
    assert (vllm_prepared.folder / "model.safetensors").stat().st_size > 100_000_000
    again = vllm_preparer.prepare(PRESET)
    assert again.folder == vllm_prepared.folder and again.converted_s == 0.0


def test_server_is_healthy_and_serves_the_given_name(vllm_server: VLLMServer) -> None:
    assert vllm_server.running and vllm_server.health()
    assert vllm_server.base_url == f"http://127.0.0.1:{vllm_server.port}/v1"
    assert vllm_server.startup_s > 0
    import openai

    sdk = openai.OpenAI(base_url=vllm_server.base_url, api_key="x", max_retries=0)
    assert [m.id for m in sdk.models.list().data] == [PRESET]


def test_listwise_answer_validates_on_the_first_try(client: OpenAIClient,
                                                    mini_items: list[Item]) -> None:
    candidates = candidates_from(mini_items[6:], 12)
    ranking = ListwiseRanker(client, PromptLibrary()).rank(horror_fan(mini_items), candidates, 4)
    assert ranking.invocation.attempts == 1
    answer = RankingAnswer.model_validate_json(ranking.invocation.raw)
    assert len(answer.ranking) == 4
    assert {e.id for e in answer.ranking} <= set(labels_for(12))
    assert ranking.unknown == []
    assert all(reason and reason.strip() for _, reason in ranking.order)


def test_recommender_over_vllm_gives_a_valid_undegraded_list(recommender: Recommender) -> None:
    history = UserHistory.from_ids(["h1", "a1", "s1"])
    rec = recommender.recommend(history, k=5)
    ids = [i.item_id for i in rec.items]
    assert not rec.degraded, rec.trace.degraded_reason
    assert rec.trace.model == PRESET and rec.trace.attempts == 1
    assert len(ids) == 5 and len(set(ids)) == 5 and not set(ids) & history.seen_ids
    assert all(i.explanation.strip() for i in rec.items)
    assert rec.trace.usage.prompt_tokens > 0 and rec.trace.usage.completion_tokens > 0


def test_logprob_ranker_scores_every_candidate(client: OpenAIClient,
                                               mini_items: list[Item]) -> None:
    candidates = candidates_from(mini_items[6:], 10)
    ranking = LogprobRanker(client, PromptLibrary()).rank(horror_fan(mini_items), candidates, 3)
    assert set(ranking.scores) == {c.item.id for c in candidates}
    assert all(math.isfinite(s) and s <= 0.0 for s in ranking.scores.values())
    best_first = sorted(ranking.scores, key=lambda i: -ranking.scores[i])
    assert [i for i, _ in ranking.order] == best_first[:3]


def test_four_concurrent_rankings_all_validate(client: OpenAIClient,
                                               mini_items: list[Item]) -> None:
    history = horror_fan(mini_items)
    jobs = [(candidates_from(mini_items[n:], 8), k) for n, k in ((2, 1), (6, 2), (10, 3), (14, 2))]

    def rank(job: tuple[list[Candidate], int]) -> tuple[int, int, list[str]]:
        candidates, k = job
        ranking = ListwiseRanker(client, PromptLibrary(), explain=False).rank(history, candidates,
                                                                             k)
        ids = {c.item.id for c in candidates}
        return ranking.invocation.attempts, k, [i for i, _ in ranking.order if i in ids]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(rank, jobs))
    assert [attempts for attempts, _, _ in results] == [1, 1, 1, 1]
    assert all(len(order) >= 1 for _, _, order in results)




GODFATHER_II = " The Godfather: Part II (1974)"
OTHER_PREFIXES = ["Toy Story (1995), Babe (1995),", "Sense and Sensibility (1995), Emma (1996),",
                  "Pulp Fiction (1994), Fargo (1996),", "Casablanca (1942), Vertigo (1958),"]


def test_continuation_logprobs_are_negative_sums_that_follow_the_prefix(
        client: OpenAIClient) -> None:
    # Measured on SmolLM2-135M: the sequel scores -16.8 after its original and -23.3 or
    # less after the other prefixes; any model that reads its prefix keeps such a margin.
    out = client.continuation_logprobs("The Godfather (1972),", [GODFATHER_II, " Babe (1995)"])
    assert all(math.isfinite(v) and v < 0 for v in out.logprobs)
    assert all(n >= 2 for n in out.tokens) and out.usage.prompt_tokens > 0
    after_others = [client.continuation_logprobs(p, [GODFATHER_II]).logprobs[0]
                    for p in OTHER_PREFIXES]
    assert out.logprobs[0] > max(after_others) + 2.0


def test_likelihood_ranker_ranks_given_candidates_sequel_first(client: OpenAIClient) -> None:
    titles = ["Toy Story (1995)", "Babe (1995)", "Sense and Sensibility (1995)",
              GODFATHER_II.strip(), "Fargo (1996)", "Alien (1979)", "Casablanca (1942)"]
    candidates = [Candidate(item=Item(id=f"c{n}", title=t, text=t), rank=n, score=0.0)
                  for n, t in enumerate(titles)]
    history = [(Interaction(item_id="h", liked=True), Item(id="h", title="The Godfather (1972)",
                                                            text="The Godfather (1972)"))]
    ranker = LikelihoodRanker(client, PromptLibrary())
    ranking = ranker.rank(history, candidates, 3)
    ids = [i for i, _ in ranking.order]
    assert len(ids) == 3 == len(set(ids)) and set(ids) <= {c.item.id for c in candidates}
    assert set(ranking.scores) == {c.item.id for c in candidates}
    assert all(math.isfinite(s) for s in ranking.scores.values())
    assert ids == sorted(ranking.scores, key=lambda i: -ranking.scores[i])[:3]
    assert ids[0] == "c3"  # The Godfather: Part II
    assert ranking.invocation.usage.prompt_tokens > 0 and ranker.cached_priors == len(titles)
