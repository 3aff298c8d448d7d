"""The baseline rows of a run: which scorers, trained on what, seeing what.

With `inputs = "all"` every baseline learns from every training interaction (whatever its
rating) and sees every interaction of the user's before the cut, at any length: what the
product's retrieval sees. With `inputs = "positive"` (the literature's convention) they
learn from the positive training interactions and see the case's positive history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from eval.baselines import (
    BPRScorer,
    EmbeddingScorer,
    ItemKNNScorer,
    PopularityScorer,
    RandomScorer,
    Scorer,
)
from eval.config import EvalConfig
from eval.datasets import Rating
from eval.protocols import Case
from eval.sequence_baselines import (
    NextCountScorer,
    RecencyKNNScorer,
    SequentialScorer,
    catalog_top,
)
from eval.sequential_models import SequentialSettings
from retrieval.store import CatalogStore

RETRIEVAL_SUFFIX = "_retrieval"
"""A baseline's row of its own top n over the whole catalog (pipeline protocol)."""


class InputView:
    """A scorer given the case as the configured inputs say: with every interaction before
    the cut as its history ("all"), or the case as it is ("positive")."""

    def __init__(self, scorer: Scorer, *, all_inputs: bool) -> None:
        self.scorer = scorer
        self.name = scorer.name
        self.all_inputs = all_inputs

    def view(self, case: Case) -> Case:
        return replace(case, history=case.prior) if self.all_inputs and case.prior else case

    def score(self, case: Case) -> dict[str, float]:
        return self.scorer.score(self.view(case))

    @property
    def can_retrieve(self) -> bool:
        """Whether the scorer ranks the whole catalog (`all_scores`)."""
        return hasattr(self.scorer, "all_scores")

    def retrieve(self, case: Case, n: int) -> Case:
        """The case with the scorer's own top n of the catalog as its candidates."""
        top = catalog_top(self.scorer, self.view(case), n)  # type: ignore[arg-type]
        return replace(case, candidates=top, retrieval_scores=(), found=())


def training_rows(config: EvalConfig, train: Sequence[Rating],
                  positives: Sequence[Rating]) -> Sequence[Rating]:
    return train if config.baselines.inputs == "all" else positives


def build_scorers(
    config: EvalConfig, train: Sequence[Rating], store: CatalogStore, *, cache: Path,
    trained: dict[str, dict[str, Any]], progress: Callable[[str], object] = lambda _: None,
) -> Iterator[InputView]:
    """The configured baselines, each fitted on `train` (the rows `training_rows` chose);
    the sequential models' training logs go into `trained`."""
    seq = config.baselines.sequential
    settings = SequentialSettings(max_epochs=seq.max_epochs, patience=seq.patience,
                                  batch_size=seq.batch_size, learning_rate=seq.learning_rate,
                                  max_length=seq.max_length, seed=config.seed)

    def sequential(model: str) -> Scorer:
        scorer = SequentialScorer("sasrec" if model == "sasrec" else "gru4rec", train,
                                  settings, cache=cache, progress=progress)
        log = scorer.trained.log
        trained[model] = {"epochs": log.epochs, "best_epoch": log.best_epoch,
                          "best_validation_ndcg@10": log.best_validation_ndcg10,
                          "training_seconds": log.seconds, "windows": log.sequences,
                          "validation_users": log.validation_users,
                          "loaded_from_cache": scorer.trained.cached,
                          "settings": seq.model_dump()}
        return scorer

    factories: dict[str, Callable[[], Scorer]] = {
        "random": lambda: RandomScorer(config.seed),
        "popularity": lambda: PopularityScorer(train),
        "itemknn": lambda: ItemKNNScorer(train),
        "embedding": lambda: EmbeddingScorer(store),
        "bpr": lambda: BPRScorer(train, seed=config.seed, **config.baselines.bpr.model_dump()),
        "nextcount": lambda: NextCountScorer(train),
        "recency_knn": lambda: RecencyKNNScorer(train),
        "sasrec": lambda: sequential("sasrec"),
        "gru4rec": lambda: sequential("gru4rec"),
    }
    for name in config.baselines.include:
        yield InputView(factories[name](), all_inputs=config.baselines.inputs == "all")


def what_it_saw(config: EvalConfig, run: str) -> str:
    """How a baseline row's inputs are described in the report."""
    base = run.removesuffix(RETRIEVAL_SUFFIX)
    own = (f"; its own top {config.protocol.n_candidates} of the whole catalog"
           if run.endswith(RETRIEVAL_SUFFIX) else "")
    if base in ("random", "popularity"):
        return "no history" + own
    if config.baselines.inputs == "all":
        learned = ("nothing (catalog text vectors)" if base == "embedding"
                   else "every training interaction, any rating")
        seen = "every interaction before the cut, any rating, any length"
    else:
        learned = ("nothing (catalog text vectors)" if base == "embedding"
                   else "positive training interactions")
        seen = f"the positive history, the most recent {config.protocol.max_history} at most"
    if base == "bpr":
        seen += " (BPR: its learned user vector at the full history)"
    if base in ("sasrec", "gru4rec"):
        seen += f" (the model reads its last {config.baselines.sequential.max_length})"
    if base == "nextcount":
        seen += " (it uses the last 10)"
    if base == "recency_knn":
        seen += " (it uses the last 50)"
    return f"learned from {learned}; saw {seen}{own}"
