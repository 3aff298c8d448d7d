"""The product as it runs: the parts the settings and the saved fit choose, and `fit`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

from recagent.chat.lookup import catalog_genres
from recagent.explain.evidence import CoLikes
from recagent.explain.explainer import Explainer
from recagent.fit import (
    LLM_USERS,
    MIN_FIT_USERS,
    FittedConfig,
    Row,
    fit_catalog,
    load_fitted,
    positive,
    row_rating,
    save_fitted,
)
from recagent.llm.backends.presets import canonical_name
from recagent.llm.client import (
    LLMClient,
)
from recagent.llm.prompts import PromptLibrary
from recagent.rank.ensemble import LLM_SOURCE, FusionRanker
from recagent.rank.factory import build_ranker, ranker_templates
from recagent.rank.listwise import Ranker
from recagent.recommender import Recommender
from recagent.wiring.parts import (
    build_retriever,
    open_interactions,
    open_llm,
    open_store,
)
from recagent.wiring.scoring_progress import ScoringProgress
from recagent.wiring.settings import (
    PRODUCT_RANKER,
    FitSource,
    HybridSpec,
    RetrieverSpec,
    Settings,
)
from retrieval.hybrid import HybridRetriever
from retrieval.store import TITLE_KEY, CatalogStore
from retrieval.types import Retriever

# ---- the product ---------------------------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """What a running recagent is made of; `client` is None when no LLM runs."""

    store: CatalogStore
    client: LLMClient | None
    prompts: PromptLibrary
    recommender: Recommender
    fitted: FittedConfig | None = None
    notes: tuple[str, ...] = ()
    """What the user should know about this configuration (printed by the CLI)."""


def stored_rows(settings: Settings) -> list[Row]:
    """The collection's interactions as the collaborative sources read them."""
    return [(r.user, r.item, row_rating(r.rating, r.liked), r.ts)
            for r in open_interactions(settings).interactions(settings.collection)]


def fitted_retriever_spec(fitted: FittedConfig) -> RetrieverSpec:
    """The hybrid retrieval a fit chose: its sources with weight > 0."""
    weights = {k: v for k, v in fitted.retrieval_weights.items() if v > 0}
    return RetrieverSpec(kind="hybrid", hybrid=HybridSpec.model_validate({"weights": weights}))


def fitted_fusion(fitted: FittedConfig | None) -> dict[str, float]:
    """The rerank weights a fit chose, those > 0 ("llm" among them if it earned any)."""
    return {k: v for k, v in (fitted.rerank_weights if fitted else {}).items() if v > 0}


def product_retriever(settings: Settings, fitted: FittedConfig | None,
                      rows: Sequence[Row]) -> tuple[RetrieverSpec, list[str]]:
    """The retrieval the product runs, and what to tell the user about it."""
    if settings.retriever is not None:
        return settings.retriever, []
    if not rows:
        return RetrieverSpec(), ["this catalog has no interactions: text retrieval + LLM only "
                                 "(ingest ratings, then `recagent fit`, for the fused pipeline)"]
    if fitted is None:
        return RetrieverSpec(kind="hybrid"), ["no fit for this catalog: default fusion weights "
                                              "(run `recagent fit` to learn them)"]
    return fitted_retriever_spec(fitted), []


@dataclass(frozen=True)
class DataParts:
    """What the product builds from the data alone (no LLM): rebuilt when it changes."""

    rows: list[Row]
    fitted: FittedConfig | None
    retriever: Retriever
    notes: list[str]


def data_parts(settings: Settings, store: CatalogStore,
               interactions: Sequence[Row] | None = None) -> DataParts:
    """The interactions, the saved fit and the retriever they make (`interactions` default
    to the ones ingested with the catalog)."""
    rows = stored_rows(settings) if interactions is None else list(interactions)
    fitted = load_fitted(settings.home, settings.collection) if settings.use_fit else None
    spec, notes = product_retriever(settings, fitted, rows)
    return DataParts(rows, fitted, build_retriever(spec, store, rows), notes)


def assemble(settings: Settings, store: CatalogStore, data: DataParts,
             client: LLMClient | None, prompts: PromptLibrary) -> Parts:
    """The Recommender over `data` with this client (None: no LLM)."""
    ranker, more = product_ranker(settings, client, prompts, data.fitted,
                                  fitted_fusion(data.fitted))
    explainer = Explainer(
        client if settings.words_explanations else None, prompts,
        stats=CoLikes((u, i) for u, i, rating, _ in data.rows if positive(rating)),
        genres=catalog_genres(store), titles=catalog_titles(store),
        llm_items=settings.llm_explained, seed=settings.seed)
    recommender = Recommender(store, data.retriever, ranker,
                              n_candidates=settings.n_candidates, explainer=explainer)
    return Parts(store, client, prompts, recommender, data.fitted, (*data.notes, *more))


@contextmanager
def open_parts(
    settings: Settings, *, interactions: Sequence[Row] | None = None,
    lists_only: bool = False,
) -> Iterator[Parts]:
    """Store, retriever, LLM, ranker and explainer as `settings` (and the saved fit) say,
    for the duration. `interactions` default to the ones ingested with the catalog.
    `lists_only`: the caller only recommends (no chat to read), so the LLM is not started
    when neither the ranking nor the explanations would call it (the same answer)."""
    store = open_store(settings)
    store.check_complete()  # a killed or running ingest: refused with what to do
    data = data_parts(settings, store, interactions)  # its errors come before the LLM starts
    prompts = PromptLibrary()
    if settings.ranker is not None:
        prompts.check(ranker_templates(settings.ranker))  # a typo fails before the LLM starts
    idle = lists_only and not uses_llm(settings, data.fitted)
    with ExitStack() as stack:
        client = stack.enter_context(open_llm(settings)) if settings.ranker and not idle \
            else None
        parts = assemble(settings, store, data, client, prompts)
        if idle and settings.ranker is not None:
            note = (f"{_why_not_ranking(data.fitted)}; explanations come from templates "
                    "(`--explain llm` asks the model): no LLM was started")
            parts = replace(parts, notes=(*parts.notes, note))
        yield parts


def uses_llm(settings: Settings, fitted: FittedConfig | None) -> bool:
    """Whether a recommendation would call the LLM: a ranker named explicitly, a fit that
    gave the LLM weight, or LLM-worded explanations."""
    if settings.ranker is None:
        return False
    explicit = settings.ranker != PRODUCT_RANKER
    return explicit or bool(fitted and fitted.uses_llm) or settings.words_explanations


def product_ranker(
    settings: Settings, client: LLMClient | None, prompts: PromptLibrary,
    fitted: FittedConfig | None, fusion: dict[str, float],
) -> tuple[Ranker | None, list[str]]:
    """What orders the candidates. A ranker the settings name explicitly always runs (fused
    with the fitted weights, if any). The product's own LLM score runs only where the fit
    gave it weight: small local models rank at random level zero-shot, so without a fit
    that measured otherwise the order is the (fused) retrieval order."""
    explicit = settings.ranker is not None and settings.ranker != PRODUCT_RANKER
    if client is not None and settings.ranker is not None and (
            explicit or (fitted is not None and fitted.uses_llm)):
        notes = []
        if fitted and fitted.llm_model and \
                canonical_name(fitted.llm_model) != canonical_name(client.model):
            notes.append(f"the fit was made with {fitted.llm_model}, not {client.model}: "
                         "run `recagent fit` again for this model")
        if explicit and fusion and fusion.get(LLM_SOURCE, 0.0) <= 0:
            # a fit that gave the LLM no weight would skip the named ranker's call: it runs,
            # weighed as much as the strongest fitted source
            fusion = {**fusion, LLM_SOURCE: max(fusion.values())}
            notes.append(f"the fit gave the LLM no weight; the ranker named ("
                         f"{settings.ranker.method}) runs, weighed as much as the strongest "
                         "fitted source")
        return build_ranker(settings.ranker, client, prompts, seed=settings.seed,
                            fusion=fusion or None), notes
    return without_llm(fusion), ([why_no_llm_weight(fitted, settings.words_explanations)]
                                 if client is not None else [])


def why_no_llm_weight(fitted: FittedConfig | None, words: bool = False) -> str:
    """Why the product's LLM does not rank, and who words the explanations (`words`: the
    LLM, else templates)."""
    return _why_not_ranking(fitted) + ("; it words the explanations" if words else
                                       "; explanations come from templates (`--explain llm` "
                                       "asks the model)")


def _why_not_ranking(fitted: FittedConfig | None) -> str:
    if fitted is None:
        return ("the LLM does not rank: no fit has measured that it helps (run `recagent fit "
                "--score-llm`)")
    if fitted.llm_model is None:
        return ("the LLM does not rank: the fit did not score it (`recagent fit --score-llm` "
                "measures whether it helps)")
    gain = fitted.validation.get("llm_gain_ndcg@10")
    p = fitted.validation.get("llm_gain_p")
    measured = f" (gain in NDCG@10 {gain:+.4f}, p = {p:.3g})" if gain is not None and \
        p is not None else ""
    return (f"the LLM does not rank: its scores added nothing significant in the fit"
            f"{measured}")


def without_llm(fusion: dict[str, float]) -> Ranker | None:
    """The fitted reranking over the candidates' own scores alone (None: retrieval order)."""
    rest = {k: v for k, v in fusion.items() if k != LLM_SOURCE}
    return FusionRanker(None, rest) if rest else None


EVERY_SOURCE = RetrieverSpec(kind="hybrid", hybrid=HybridSpec.model_validate(
    {"weights": dict.fromkeys(get_args(FitSource), 1.0)}))
"""What a fit starts from: every source it weighs (not the item-side ones), equal weights."""


def fit_product(
    store: CatalogStore, rows: Sequence[Row], *, collection: str, ranker: Ranker | None,
    llm_model: str | None, n: int, n_users: int | None, seed: int, strict: bool = False,
    progress: Callable[[str], object] = lambda _: None, min_users: int = MIN_FIT_USERS,
) -> FittedConfig:
    """Both fits of `recagent.fit` on `rows`, every source built by the product's wiring:
    what `recagent fit` saves, and what eval's `product` row runs on its training split."""
    def build(train: Sequence[Row]) -> HybridRetriever:
        retriever = build_retriever(EVERY_SOURCE, store, train)
        assert isinstance(retriever, HybridRetriever)
        return retriever

    return fit_catalog(collection=collection, rows=rows, build=build, items=store.get,
                       ranker=ranker, llm_model=llm_model, n=n, n_users=n_users, seed=seed,
                       strict=strict, progress=progress, min_users=min_users)


def fit_and_save(
    settings: Settings, *, n_users: int | None = None,
    progress: Callable[[str], object] | None = None,
) -> tuple[FittedConfig, Path]:
    """`recagent fit`: both fits on the catalog's interactions with this LLM (the settings'
    ranker; None: without it), saved beside the catalog."""
    store = open_store(settings)
    store.check_complete()
    with ExitStack() as stack:
        ranker: Ranker | None = None
        client: LLMClient | None = None
        if settings.ranker is not None:
            client = stack.enter_context(open_llm(settings))
            shown = ScoringProgress(build_ranker(settings.ranker, client, PromptLibrary(),
                                                 seed=settings.seed), n_users or LLM_USERS)
            stack.callback(shown.close)
            ranker = shown
        fitted = fit_product(
            store, stored_rows(settings), collection=settings.collection, ranker=ranker,
            llm_model=client.model if client else None, n=settings.n_candidates,
            n_users=n_users, seed=settings.seed, progress=progress or (lambda _: None))
    return fitted, save_fitted(settings.home, fitted)


def catalog_titles(store: CatalogStore) -> list[str]:
    """Every title in the catalog (the explanation checker refuses the ones not allowed)."""
    got = store.collection.get(include=["metadatas"])
    return [str(m[TITLE_KEY]) for m in got["metadatas"] or [] if m and TITLE_KEY in m]


@contextmanager
def open_recommender(settings: Settings) -> Iterator[Recommender]:
    """The Python API's entry point: a Recommender as `settings` say, for the duration."""
    with open_parts(settings) as parts:
        yield parts.recommender
