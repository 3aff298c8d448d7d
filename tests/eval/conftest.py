"""A small report made by the real harness and writer (real Chroma, the LLM scripted at the
client boundary), for the report writer's and the recompute's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.config import load_config
from eval.datasets import Dataset, Rating
from eval.harness import EvalResult, Harness
from eval.report import write_report
from eval.summary import summarize
from recagent.types import Completion, Item
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient

GENRES = ["horror", "cartoon", "space", "romance", "western"]
REPORT_ITEMS = {str(n): Item(id=str(n), title=f"Film {n}",
                             text=f"Film {n}, a {GENRES[n % 5]} movie.") for n in range(1, 41)}
REPORT_RATINGS = tuple(
    Rating(user=f"u{u}", item=str(1 + (u * 5 + k) % 40), rating=(5.0, 2.0, 4.0)[k % 3],
           ts=100 * u + k // 2)  # pairs share a timestamp: the tie rule decides
    for u in range(10) for k in range(8)
)
REPORT_DATASET = Dataset(name="tiny", ratings=REPORT_RATINGS, items=REPORT_ITEMS)
REPORT_CONFIG = """\
name = "tiny"
seed = 5

[dataset]
kind = "ml-100k"
path = "unused"

[protocol]
kind = "llmrank"
n_negatives = 4
k = 3
history_lengths = [1, "full"]

[users]
llm_sample = 6

[baselines]
include = ["random", "popularity", "itemknn", "embedding", "bpr"]

[baselines.bpr]
iterations = 5

[[variants]]
name = "lp"
method = "logprob"
explain = false
max_history = 2

[[variants]]
name = "lp-fused"
method = "logprob"
explain = false
max_history = 2
fusion = ["popularity", "itemknn"]
fit_users = 2
judge_against = "lp"
"""
LOGPROB_ANSWER = Completion(text="C", top_logprobs=[{"C": -0.1, "A": -1.0, "E": -2.0}])


@pytest.fixture(scope="session")
def report_store(embedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path_factory.mktemp("report-chroma"),
                             name="tiny-report")


def make_report(folder: Path, store: CatalogStore) -> EvalResult:
    """Run REPORT_CONFIG over REPORT_DATASET and write its report into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(REPORT_CONFIG, encoding="utf-8")
    config = load_config(folder / "config.toml")
    result = Harness(config, dataset=REPORT_DATASET, store=store, out=folder,
                     progress=False).run(ScriptedClient(*[LOGPROB_ANSWER] * 40))
    write_report(result, summarize(result), folder, REPORT_CONFIG)
    return result


@pytest.fixture(scope="session")
def tiny_report(report_store: CatalogStore,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, EvalResult]:
    """A finished report folder (do not modify: copy it first) and the result it came from."""
    folder = tmp_path_factory.mktemp("reports") / "tiny"
    return folder, make_report(folder, report_store)
