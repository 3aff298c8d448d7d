"""Eval wiring of the few-shot and NIR variants: config validation, the donor pool (outside
the LLM sample, only what came before each donor's target), and a harness run with the
LLM scripted at the client boundary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from eval.config import EvalConfig, VariantConfig, load_config
from eval.conversation_config import (
    CONVERSATION_KINDS,
    load_conversation_config,
    protocol_kind,
)
from eval.datasets import Dataset, Rating, load_ml100k
from eval.harness import Harness
from eval.protocols import leave_one_out, llmrank_cases, sample_users
from eval.variants import demonstration_pool, demonstrations
from recagent.errors import ConfigError
from recagent.rank.demonstrations import DemonstrationSelector, jaccard
from recagent.types import Candidate, Interaction, Item
from retrieval.embeddings import OnnxEmbedder
from retrieval.store import CatalogStore
from tests.conftest import DATA, needs_data
from tests.fakes import ScriptedClient

GENRES = ["horror", "cartoon", "space", "romance", "western"]
ITEMS = {str(n): Item(id=str(n), title=f"Film {n}",
                      text=f"Film {n}, a {GENRES[n % 5]} movie.") for n in range(1, 41)}
RATINGS = tuple(
    Rating(user=f"u{u}", item=str(1 + (u * 5 + k) % 40), rating=5.0, ts=100 * u + k)
    for u in range(8) for k in range(6)
)
DATASET = Dataset(name="tiny", ratings=RATINGS, items=ITEMS)


def toml_config(tmp_path: Path, variant: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('name = "t"\n[dataset]\nkind = "ml-100k"\npath = "x"\n'
                    '[protocol]\nkind = "llmrank"\n[[variants]]\nname = "v"\n' + variant)
    return path


# ---- config -----------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ('demos = "nearest"', "variants.0.demos"),
    ('demo = "similar"\nfew_shot = 3', "variants.0.demo"),           # a typo is an error
    ('demos = "similar"', "needs few_shot > 0"),
    ('method = "nir"\ntemplate = "rank_zero_shot"', "own templates"),
    ('method = "nir"\nfew_shot = 2', "few_shot applies to method 'listwise' only"),
    ('method = "ranknet"', "variants.0.method"),
    ("few_shot = 3\ndemo_budget = 10", "variants.0.demo_budget"),
])
def test_bad_variant_options_are_config_errors_naming_the_field(
        tmp_path: Path, body: str, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_config(toml_config(tmp_path, body))


def test_new_options_parse(tmp_path: Path) -> None:
    similar = load_config(toml_config(tmp_path, 'few_shot = 3\ndemos = "similar"\n'
                                                'demo_budget = 600')).variants[0]
    assert (similar.few_shot, similar.demos, similar.demo_budget) == (3, "similar", 600)
    nir = load_config(toml_config(tmp_path, 'method = "nir"\nexplain = false')).variants[0]
    assert nir.method == "nir" and nir.template is None and not nir.explain


@pytest.mark.parametrize("path", sorted((REPO / "eval" / "configs").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_names_its_report(path: Path) -> None:
    if protocol_kind(path) in CONVERSATION_KINDS:  # dialogues: their own config
        assert load_conversation_config(path).name == path.stem
        return
    assert load_config(path).name == path.stem


def test_the_methods_config_loads_with_its_four_variants() -> None:
    cfg = load_config(REPO / "eval" / "configs" / "methods_ml100k.toml")
    assert cfg.protocol.kind == "llmrank"
    assert cfg.protocol.history_lengths == [1, 3, 5, 10, "full"]
    reference = load_config(REPO / "eval" / "configs" / "llmrank_ml100k.toml")
    assert cfg.llm == reference.llm
    # nested in the reference sample, so the zero-shot full-history answers are cached
    assert cfg.users.llm_sample is not None and reference.users.llm_sample is not None
    assert cfg.users.llm_sample <= reference.users.llm_sample
    got = {(v.method, v.few_shot, v.demos, v.explain) for v in cfg.variants}
    assert got == {("listwise", 0, "random", False), ("listwise", 3, "random", False),
                   ("listwise", 3, "similar", False), ("nir", 0, "random", False)}


# ---- rankers and the donor pool -----------------------------------------------------------

def test_pool_is_outside_the_sample_and_only_before_each_donors_target() -> None:
    loo = leave_one_out(DATASET)
    sample = set(sample_users([s.user for s in loo.splits], 4, seed=5))
    pool = demonstration_pool(loo.splits, ITEMS, DATASET.rated_items(), k=2, exclude=sample,
                              seed=5)
    splits = {s.user: s for s in loo.splits}
    assert len(pool) == len(loo.splits) - 4
    assert not {d.user_id for d in pool} & sample
    ts = {(r.user, r.item): r.ts for r in RATINGS}
    for d in pool:
        split = splits[d.user_id or ""]
        assert d.chosen_id == split.target and d.chosen_title == ITEMS[split.target].title
        assert split.target not in d.history_ids
        target_ts = ts[(split.user, split.target)]
        assert all(ts[(split.user, i)] < target_ts for i in d.history_ids)
    # the first k are the donors fixed demonstrations were always drawn from
    donors = [s.user for s in loo.splits if s.user not in sample]
    assert {d.user_id for d in pool[:2]} == set(sample_users(donors, 2, 6))


def test_variant_demonstrations_are_a_selector_or_none() -> None:
    loo = leave_one_out(DATASET)
    args = (loo.splits, ITEMS, DATASET.rated_items())
    assert demonstrations(VariantConfig(name="z"), *args, exclude=set(), seed=5) == []
    similar = demonstrations(VariantConfig(name="s", few_shot=2, demos="similar",
                                           demo_budget=700), *args, exclude={"u1"}, seed=5)
    assert isinstance(similar, DemonstrationSelector)
    assert similar.similar and similar.k == 2 and similar.budget_tokens == 700
    assert "u1" not in {d.user_id for d in similar.pool}
    fixed = demonstrations(VariantConfig(name="r", few_shot=2), *args, exclude=set(), seed=5)
    assert isinstance(fixed, DemonstrationSelector) and not fixed.similar


@needs_data
def test_on_movielens_similar_demos_never_leak_and_overlap_more_than_random() -> None:
    dataset = load_ml100k(DATA / "ml-100k")
    loo = leave_one_out(dataset)
    sample = sample_users([s.user for s in loo.splits], 200, seed=2024)
    cases = llmrank_cases([s for s in loo.splits if s.user in set(sample)],
                          dataset.rated_items(), setting=5, n_negatives=19, max_history=50,
                          seed=2024)
    pool = demonstration_pool(loo.splits, dataset.items, dataset.rated_items(), k=3,
                              exclude=set(sample), seed=2024)
    similar = DemonstrationSelector(pool, 3, similar=True)
    fixed = DemonstrationSelector(pool, 3, similar=False)
    overlap = {"similar": 0.0, "fixed": 0.0}
    for case in cases:
        history = [(Interaction(item_id=r.item, rating=r.rating), dataset.items[r.item])
                   for r in case.history]
        candidates = [Candidate(item=dataset.items[c], rank=n, score=0.0)
                      for n, c in enumerate(case.candidates)]
        for name, selector in (("similar", similar), ("fixed", fixed)):
            demos = selector.select(history, candidates)
            assert len(demos) == 3
            for d in demos:
                assert d.user_id not in sample and d.user_id != case.user
                assert d.chosen_id != case.target and d.chosen_id not in case.candidates
                assert d.chosen_id not in {r.item for r in case.history}
                overlap[name] += jaccard(d.history_ids, [r.item for r in case.history])
    assert overlap["similar"] > 2 * overlap["fixed"]


# ---- a harness run --------------------------------------------------------------------------

def answer(messages: list[dict[str, str]]) -> str:
    """NIR's steps and the listwise ranking, told apart by what the prompt asks for."""
    last = messages[-1]["content"]
    if "Summarise their preferences" in last:
        return json.dumps({"preferences": "horror and space"})
    if "Select the history items" in last:
        return json.dumps({"representative": ["H1"]})
    return json.dumps({"ranking": [{"id": x} for x in "CAB"]})


@pytest.fixture(scope="module")
def store(embedder: OnnxEmbedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path_factory.mktemp("chroma"), name="variants")


def test_harness_runs_similar_few_shot_and_nir_variants(store: CatalogStore,
                                                        tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "name": "tiny", "seed": 5, "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "llmrank", "n_negatives": 4, "k": 3},
        "users": {"llm_sample": 4}, "baselines": {"include": ["random"]},
        "variants": [
            {"name": "similar", "few_shot": 2, "demos": "similar", "explain": False},
            {"name": "nir", "method": "nir", "explain": False},
        ],
    }
    client = ScriptedClient(*[answer] * 40)
    harness = Harness(EvalConfig.model_validate(raw), dataset=DATASET, store=store,
                      out=tmp_path, progress=False)
    result = harness.run(client)
    for run in ("similar", "nir"):
        rows = result.results[run][0]
        assert len(rows) == 4 and not any(r.failed or r.degraded for r in rows)
    few_shot = [r["messages"] for r in client.requests if len(r["messages"]) > 2]
    nir = [r for r in client.requests if len(r["messages"]) == 2]
    assert len(few_shot) == 4 and len(nir) == 12  # 4 users x 3 steps
    for messages in few_shot:
        # 1 or 2 demonstrations: in this tiny catalog a donor's choice is often a neighbour's
        # history item or candidate, and then it is skipped
        n = (len(messages) - 2) // 2
        assert 1 <= n <= 2
        assert [m["role"] for m in messages] == ["system", *["user", "assistant"] * n, "user"]
        shown = {m.group(1) for m in re.finditer(r"(Film \d+)", messages[-1]["content"])}
        for demo_user, demo_answer in zip(messages[1:-1:2], messages[2:-1:2], strict=True):
            label = json.loads(demo_answer["content"])["ranking"][0]["id"]
            chosen = re.search(rf"^\[{label}\] (Film \d+)", demo_user["content"], re.M)
            assert chosen is not None and chosen.group(1) not in shown
