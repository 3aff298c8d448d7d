"""The one wiring module: settings → store, retriever, LLM client, ranker (recagent/wiring.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fakes import ScriptedClient

from eval.config import LATER_FIELDS, LLMConfig, VariantConfig
from eval.evaluate import eval_llm_spec
from recagent.cli.main import build_parser
from recagent.cli.options import settings_from_args
from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.prompts import PromptLibrary
from recagent.rank.ensemble import BootstrapRanker, FusionRanker, ShuffledRanker
from recagent.rank.factory import RankerSpec, build_ranker
from recagent.rank.listwise import ListwiseRanker
from recagent.rank.logprob import LogprobRanker
from recagent.rank.nir import NIRRanker
from recagent.types import Demonstration, Item, UserHistory
from recagent.wiring import (
    PRODUCT_RANKER,
    HybridSpec,
    LLMSpec,
    RetrieverSpec,
    Settings,
    build_retriever,
    open_parts,
    open_store,
)
from retrieval.hybrid import HybridRetriever
from retrieval.semantic import SemanticRetriever

DEMO = Demonstration(history_titles=["A"], candidate_titles=["B", "C"], chosen_title="B",
                     reason="r")


def test_build_ranker_per_method() -> None:
    prompts, client = PromptLibrary(), ScriptedClient()
    nir = build_ranker(RankerSpec(method="nir", explain=False, max_history=7), client, prompts,
                       seed=3)
    assert isinstance(nir, NIRRanker) and not nir.explain and nir.max_history == 7
    few = build_ranker(RankerSpec(few_shot=2), client, prompts, [DEMO], seed=3)
    assert isinstance(few, ListwiseRanker) and few.template == "rank_few_shot"
    zero = build_ranker(RankerSpec(), client, prompts)
    assert isinstance(zero, ListwiseRanker) and zero.template == "rank_zero_shot"
    assert isinstance(build_ranker(RankerSpec(method="logprob"), client, prompts), LogprobRanker)
    assert isinstance(build_ranker(RankerSpec(method="nir", bootstrap=2), client, prompts),
                      BootstrapRanker)
    assert isinstance(build_ranker(RankerSpec(order=1), client, prompts), ShuffledRanker)
    fused = build_ranker(RankerSpec(), client, prompts, fusion={"llm": 1.0, "popularity": 0.5})
    assert isinstance(fused, FusionRanker)
    assert client.requests == []  # building calls nothing


def test_bad_ranker_specs_fail_before_any_call() -> None:
    prompts, client = PromptLibrary(), ScriptedClient()
    with pytest.raises(ConfigError, match="needs demonstrations"):
        build_ranker(RankerSpec(few_shot=2), client, prompts)
    with pytest.raises(ConfigError, match="no prompt template 'nope'"):
        build_ranker(RankerSpec(template="nope"), client, prompts)
    with pytest.raises(ValueError, match="few_shot applies to method 'listwise' only"):
        RankerSpec(method="nir", few_shot=1)
    with pytest.raises(ValueError, match="extra"):
        Settings(home=Path("."), ranker_name="x")  # type: ignore[call-arg]
    assert client.requests == []


def test_an_eval_variant_is_the_products_ranker_spec() -> None:
    # The stored result logs are keyed by the variant's identity: fields added later stay out
    # of it at their default, so the keys of committed results stay these.
    assert issubclass(VariantConfig, RankerSpec)
    keyed = {"name", "method", "template", "few_shot", "demos", "demo_budget", "explain",
             "bootstrap", "order", "fusion", "fit_users", "fit_folds", "fuse_llm", "temperature",
             "max_history"}
    assert set(VariantConfig.model_fields) == keyed | set(LATER_FIELDS)
    assert set(VariantConfig(name="v").identity()) == keyed
    assert VariantConfig(name="v", method="logprob", calibrate="letters").identity()[
        "calibrate"] == "letters"
    assert issubclass(LLMConfig, LLMSpec)


def test_eval_llm_table_wins_over_the_command_line() -> None:
    cli = Settings(home=Path("."), llm=LLMSpec(preset="smollm2-135m", threads=2))
    assert eval_llm_spec(LLMConfig(preset="qwen2.5-coder-0.5b"), cli) == \
        LLMSpec(preset="qwen2.5-coder-0.5b", threads=2)
    assert eval_llm_spec(LLMConfig(), cli) == cli.llm
    engine = eval_llm_spec(LLMConfig(engine="vllm", device="gpu"), cli)
    assert engine == LLMSpec(engine="vllm", device="gpu")  # llama.cpp threads do not apply


def test_the_command_line_chooses_the_pipeline(tmp_path: Path) -> None:
    def settings(*argv: str) -> Settings:
        args: argparse.Namespace = build_parser().parse_args(
            ["recommend", "--history", "1", "--home", str(tmp_path), *argv])
        return settings_from_args(args)

    default = settings()
    assert default.ranker == PRODUCT_RANKER and default.retriever is None  # the product's
    assert settings("--no-llm").ranker is None
    chosen = settings("--method", "nir", "--bootstrap", "3", "--retriever", "hybrid",
                      "--model", "qwen2.5-coder-0.5b")
    assert chosen.ranker == RankerSpec(method="nir", bootstrap=3, explain=False)
    assert chosen.retriever is not None and chosen.retriever.kind == "hybrid"
    assert chosen.llm.preset == "qwen2.5-coder-0.5b"
    assert settings("--template", "rank_recency").ranker == RankerSpec(
        template="rank_recency", explain=False)  # a template names a listwise ranker
    assert settings("--method", "likelihood").ranker == RankerSpec(
        method="likelihood", explain=False)


@pytest.fixture
def home(tmp_path: Path, artifact_store: ArtifactStore) -> Path:
    """A home whose model files are the test cache's (no copy, nothing fetched)."""
    (tmp_path / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    return tmp_path


def test_retrievers_from_specs(home: Path, mini_items: list[Item]) -> None:
    store = open_store(Settings(home=home), collection="wiring")
    store.ingest(mini_items)
    assert isinstance(build_retriever(RetrieverSpec(), store), SemanticRetriever)
    with pytest.raises(ConfigError, match="need interactions"):
        build_retriever(RetrieverSpec(kind="hybrid"), store)
    ids = [i.id for i in mini_items]
    pairs = [("u1", ids[0]), ("u1", ids[1]), ("u2", ids[0]), ("u2", ids[2])]
    hybrid = build_retriever(RetrieverSpec(kind="hybrid"), store, pairs)
    assert isinstance(hybrid, HybridRetriever)
    assert set(hybrid.sources) == {"semantic", "cooccurrence", "popularity"}
    text_only = build_retriever(
        RetrieverSpec(kind="hybrid", hybrid=HybridSpec(weights={"semantic": 1.0})), store)
    found = text_only.retrieve(UserHistory.from_ids([ids[0]]), 3)
    assert len(found) == 3 and ids[0] not in {c.item.id for c in found}


def test_open_parts_without_an_llm(home: Path, mini_items: list[Item]) -> None:
    settings = Settings(home=home, ranker=None, n_candidates=5)
    with open_parts(settings) as parts:
        parts.store.ingest(mini_items)
        assert parts.client is None and parts.recommender.ranker is None
        rec = parts.recommender.recommend(UserHistory.from_ids([mini_items[0].id]), k=3)
    assert len(rec.items) == 3 and not rec.degraded
    assert mini_items[0].id not in {i.item_id for i in rec.items}


def test_a_template_typo_fails_before_the_llm_starts(home: Path) -> None:
    # No model file is needed: the settings are refused before any server would start.
    settings = Settings(home=home, ranker=RankerSpec(template="nope"),
                        llm=LLMSpec(preset="/nowhere/model.gguf"))
    with pytest.raises(ConfigError, match="no prompt template 'nope'"), open_parts(settings):
        pass


@pytest.mark.parametrize(("fitted_with", "running", "warned"), [
    ("qwen2.5-0.5b", "qwen2.5-coder-0.5b", False),  # an old fit, the preset's new name
    ("qwen2.5-coder-0.5b", "qwen2.5-0.5b", False),
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b", False),
    ("qwen2.5-0.5b", "smollm2-135m", True),
    ("qwen2.5-0.5b", "qwen2.5-coder-1.5b", True),
])
def test_a_fit_counts_for_its_model_under_either_name(
        tmp_path: Path, fitted_with: str, running: str, warned: bool) -> None:
    from recagent.fit import FittedConfig
    from recagent.wiring import product_ranker

    fitted = FittedConfig(collection="c", retrieval_weights={"semantic": 1.0},
                          rerank_weights={"llm": 1.0}, llm_model=fitted_with, llm_share=1.0,
                          validation_users=10, validation={}, interactions=1, fitted_at="now")
    client = ScriptedClient()
    client.model = running
    ranker, notes = product_ranker(Settings(home=tmp_path), client, PromptLibrary(), fitted,
                                   {"llm": 1.0})
    assert ranker is not None
    assert bool(notes) == warned
    if warned:
        assert notes[0].startswith(f"the fit was made with {fitted_with}, not {running}")


def test_a_ranker_named_after_a_fit_that_gave_the_llm_no_weight_still_runs(
        tmp_path: Path) -> None:
    """Probe case 6: `recommend --method listwise` on a fitted home made no ranking call."""
    from recagent.fit import FittedConfig
    from recagent.rank.ensemble import FusionRanker
    from recagent.wiring import product_ranker

    fitted = FittedConfig(collection="c", retrieval_weights={"semantic": 1.0},
                          rerank_weights={"semantic": 0.5, "popularity": 0.2, "llm": 0.0},
                          llm_model="smollm2-135m", llm_share=0.0, validation_users=10,
                          validation={}, interactions=1, fitted_at="now")
    client = ScriptedClient()
    client.model = "smollm2-135m"
    named = Settings(home=tmp_path, ranker=RankerSpec(method="listwise", explain=False))
    ranker, notes = product_ranker(named, client, PromptLibrary(), fitted,
                                   {"semantic": 0.5, "popularity": 0.2})
    assert isinstance(ranker, FusionRanker) and ranker.inner is not None
    assert ranker.weights["llm"] == 0.5 and "runs" in notes[0]
    # the product's own score still runs only where the fit gave it weight
    plain, _ = product_ranker(Settings(home=tmp_path), client, PromptLibrary(), fitted,
                              {"semantic": 0.5, "popularity": 0.2})
    assert isinstance(plain, FusionRanker) and plain.inner is None


def test_templates_word_explanations_unless_the_llm_is_asked(tmp_path: Path) -> None:
    """No shipped preset passes the 80% rule (docs/product.md): templates by default, no
    wording call; `--explain llm` (explain_with_llm=True) asks for the model."""
    from recagent.llm.backends.presets import PRESETS
    assert not any(p.words_explanations for p in PRESETS.values())
    assert not Settings(home=tmp_path).words_explanations
    assert not Settings(home=tmp_path, llm=LLMSpec(base_url="http://x/v1")).words_explanations
    assert Settings(home=tmp_path, explain_with_llm=True).words_explanations
