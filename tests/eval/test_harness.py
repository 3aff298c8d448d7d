"""The harness on a tiny catalog in a real Chroma store, with the LLM scripted at the
client boundary: cache and resume, failures counted as 0, reports written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import eval.harness
from eval.config import EvalConfig
from eval.datasets import Dataset, Rating
from eval.fusion import folds
from eval.harness import Harness
from eval.per_user import llm_result
from eval.protocols import Case
from eval.report import markdown
from eval.summary import summarize
from recagent.errors import ConfigError, TransportError
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker
from recagent.recommender import Recommender
from recagent.types import Completion, Item
from retrieval.semantic import SemanticRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient

GENRES = ["horror", "cartoon", "space", "romance", "western"]
ITEMS = {str(n): Item(id=str(n), title=f"Film {n}",
                      text=f"Film {n}, a {GENRES[n % 5]} movie.") for n in range(1, 41)}
USERS = 8
RATINGS = tuple(
    Rating(user=f"u{u}", item=str(1 + (u * 5 + k) % 40), rating=5.0, ts=100 * u + k)
    for u in range(USERS) for k in range(6)
)
DATASET = Dataset(name="tiny", ratings=RATINGS, items=ITEMS)
LOGPROB_ANSWER = Completion(text="C", top_logprobs=[{"C": -0.1, "A": -1.0, "E": -2.0}])
"""A logprob ranker's answer: the third candidate first."""


def config(**over: Any) -> EvalConfig:
    raw: dict[str, Any] = {
        "name": "tiny", "seed": 5,
        "dataset": {"kind": "ml-100k", "path": "unused"},
        "protocol": {"kind": "llmrank", "n_negatives": 4, "k": 3},
        "users": {"llm_sample": 4},
        "baselines": {"include": ["random", "popularity", "itemknn", "embedding"]},
        "llm": {"concurrency": 2},
        "variants": [{"name": "zs", "template": "rank_zero_shot", "explain": False}],
    }
    for key, value in over.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return EvalConfig.model_validate(raw)


def pick(messages: list[dict[str, str]]) -> str:
    return json.dumps({"ranking": [{"id": x, "reason": "fits"} for x in "CAB"]})


def picks(n: int) -> ScriptedClient:
    return ScriptedClient(*[pick] * n)


@pytest.fixture(scope="module")
def store(embedder, tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    return CatalogStore.open(embedder, path=tmp_path_factory.mktemp("chroma"), name="tiny")


def harness(cfg: EvalConfig, store: CatalogStore, out: Path) -> Harness:
    return Harness(cfg, dataset=DATASET, store=store, out=out, progress=False)


def rankings(result, run: str = "zs") -> dict[str, list[str]]:
    return {r.user: r.ranking for rs in result.results[run].values() for r in rs}


def test_baselines_cover_all_users_and_the_llm_its_sample(store, tmp_path: Path) -> None:
    client = picks(10)
    result = harness(config(), store, tmp_path).run(client)
    assert len(client.requests) == 4
    assert all(len(result.results[b][0]) == USERS for b in result.baselines)
    assert len(result.results["zs"][0]) == 4
    for case in result.cases[0]:
        assert case.target in case.candidates and len(case.candidates) == 5
    # the LLM answered C, A, B: the ranking is those candidates in that order
    for case in result.cases[0]:
        if case.user in result.llm_users:
            got = rankings(result)[case.user]
            assert got == [case.candidates[2], case.candidates[0], case.candidates[1]]


def test_a_rerun_makes_zero_llm_calls_from_the_log_or_from_the_cache(store, tmp_path) -> None:
    first = harness(config(), store, tmp_path).run(picks(10))
    again = ScriptedClient()  # any request would fail the run with "script exhausted"
    second = harness(config(), store, tmp_path).run(again)
    assert again.requests == [] and rankings(second) == rankings(first)
    assert second.sessions[0].users == 0  # every user came from the result log

    for log in (tmp_path / "state").glob("*.jsonl"):
        log.unlink()
    cold = ScriptedClient()
    third = harness(config(), store, tmp_path).run(cold)
    assert cold.requests == [] and rankings(third) == rankings(first)
    assert third.cache is not None and (third.cache.hits, third.cache.misses) == (4, 0)


def test_a_stored_answer_is_not_reused_for_other_candidates(
    store, tmp_path, monkeypatch
) -> None:
    harness(config(), store, tmp_path).run(picks(10))
    real = eval.harness.llmrank_cases

    def reversed_cases(*args: Any, **kwargs: Any) -> list[Case]:  # as a retrieval change would
        return [dataclasses.replace(c, candidates=c.candidates[::-1])
                for c in real(*args, **kwargs)]

    monkeypatch.setattr(eval.harness, "llmrank_cases", reversed_cases)
    client = picks(10)
    result = harness(config(), store, tmp_path).run(client)
    assert len(client.requests) == 4  # every sample user asked again, about the new order
    for case in result.cases[0]:
        if case.user in result.llm_users:
            got = rankings(result)[case.user]
            assert got == [case.candidates[2], case.candidates[0], case.candidates[1]]


def test_ctrl_c_leaves_a_resumable_state(store, tmp_path: Path) -> None:
    def interrupt(messages: list[dict[str, str]]) -> str:
        raise KeyboardInterrupt

    cfg = config(llm={"concurrency": 1})
    first = ScriptedClient(pick, pick, interrupt, pick)
    with pytest.raises(KeyboardInterrupt):
        harness(cfg, store, tmp_path).run(first)
    logged = [line for log in (tmp_path / "state").glob("*.jsonl")
              for line in log.read_text().splitlines()]
    assert len(logged) == 2
    resumed = picks(10)
    result = harness(cfg, store, tmp_path).run(resumed)
    assert len(rankings(result)) == 4
    # Only the interrupted request is sent again: the two logged users cost nothing, and
    # a user whose answer arrived after the interrupt (if any) is answered by the cache.
    assert len(first.requests) + len(resumed.requests) == 4 + 1


def test_a_changed_variant_does_not_reuse_old_results(store, tmp_path: Path) -> None:
    harness(config(), store, tmp_path).run(picks(10))
    changed = config(variants=[{"name": "zs", "template": "rank_recency", "explain": False}])
    client = picks(10)
    harness(changed, store, tmp_path).run(client)
    assert len(client.requests) == 4


def test_failed_users_score_zero_and_are_counted(store, tmp_path: Path) -> None:
    client = ScriptedClient(*[TransportError("server down")] * 10)
    result = harness(config(), store, tmp_path).run(client)
    summary = summarize(result)
    sample = summary["populations"]["llm_sample"]["settings"]["full"]["rows"]["zs"]
    assert sample["users"] == 4 and sample["failed"] == 4
    assert sample["ndcg@10"] == 0.0 and sample["hit_rate@10"] == 0.0
    validity = summary["validity"]["zs"]["full"]
    assert validity["degraded"] == 4 and validity["failed"] == 4
    stored = result.results["zs"][0]
    assert {r.error for r in stored} == {"TransportError: server down"}
    assert not any(r.parse_failure for r in stored)


def test_an_exception_is_a_failed_user_not_a_crash(store) -> None:
    ranker = ListwiseRanker(picks(1), PromptLibrary())
    recommender = Recommender(store, SemanticRetriever(store), ranker)
    store.ingest(list(ITEMS.values()))
    unknown = Case(user="x", setting=0, target="1", candidates=("1", "2", "3"),
                   history=(Rating(user="x", item="nope", rating=5.0, ts=1),))
    result = llm_result(recommender, unknown, "zs", 3, ITEMS, True)
    assert result.failed and result.ranking == [] and "UnknownItemError" in (result.error or "")


def test_the_stored_result_counts_the_trace_by_its_fields() -> None:
    from eval.per_user import _from_recommendation
    from recagent.types import RankedItem, Recommendation, Repair, Trace, Usage

    repairs = [
        Repair(kind="unknown_label", item_id="Q", detail="dropped 'Q': not a candidate label"),
        Repair(kind="not_candidate", item_id="99", detail="filled 7 item(s), says the text"),
        Repair(kind="duplicate", item_id="2", detail="dropped '2': not a candidate"),
        Repair(kind="filled", count=2, detail="no number here"),
    ]
    trace = Trace(attempts=2, repaired=True, repairs=repairs, degraded=True,
                  degraded_reason="parse", degraded_detail="ResponseError: bad (after 2)",
                  usage=Usage(prompt_tokens=10, completion_tokens=3))
    rec = Recommendation(items=[RankedItem(item_id="2", title="Film 2", score=1.0,
                                           explanation="x")], trace=trace)
    base = {"run": "zs", "user": "u", "setting": 0, "history_len": 1, "case": "k"}
    got = _from_recommendation(rec, base, False)
    assert (got.invented, got.filled, got.parse_failure, got.reasked) == (2, 2, True, True)
    assert got.error == "ResponseError: bad (after 2)" and got.ranking == ["2"]
    assert got.degraded and not got.failed and got.prompt_tokens == 10
    zeroed = _from_recommendation(rec, base, True)
    assert zeroed.failed and zeroed.ranking == []
    other = trace.model_copy(update={"degraded_reason": "transport",
                                     "degraded_detail": "ResponseError lookalike"})
    assert not _from_recommendation(rec.model_copy(update={"trace": other}), base,
                                    False).parse_failure


def test_fusion_is_fitted_outside_the_sample_and_reuses_the_llm_calls(store, tmp_path) -> None:
    client = ScriptedClient(*[LOGPROB_ANSWER] * 12)
    cfg = config(users={"llm_sample": 5}, variants=[
        {"name": "lp", "method": "logprob", "explain": False},
        {"name": "lp-fused", "method": "logprob", "explain": False,
         "fusion": ["popularity", "itemknn"], "fit_users": 2}])
    result = harness(cfg, store, tmp_path).run(client)
    # one call per sample user, shared by both variants, and one per validation user
    assert len(client.requests) == 5 + 2
    fused = {r.user: r for r in result.results["lp-fused"][0]}
    assert set(fused) == set(result.llm_users) and not any(r.failed for r in fused.values())
    cases = {c.user: c for c in result.cases[0]}
    for user, r in fused.items():
        assert len(r.ranking) == 3 and set(r.ranking) <= set(cases[user].candidates)
    fitted = json.loads((tmp_path / "state" / "fusion-lp-fused.json").read_text())["0"]
    assert len(fitted["users"]) == 2 and not set(fitted["users"]) & set(result.llm_users)
    assert set(fitted["weights"]) == {"llm", "popularity", "itemknn"}
    with pytest.raises(ValueError, match=r"not in baselines\.include"):
        config(variants=[{"name": "x", "method": "logprob", "fusion": ["bpr"]}])


def test_fusion_without_the_llm_fits_the_same_users_and_never_calls_it(store, tmp_path) -> None:
    client = ScriptedClient(*[LOGPROB_ANSWER] * 7)
    fusion = {"method": "logprob", "explain": False, "fusion": ["popularity", "itemknn"],
              "fit_users": 2}
    cfg = config(users={"llm_sample": 5}, variants=[
        {"name": "lp-fused", "judge_against": "cf-fused", **fusion},
        {"name": "cf-fused", "fuse_llm": False, **fusion}])
    result = harness(cfg, store, tmp_path).run(client)
    assert len(client.requests) == 5 + 2  # the LLM variant's calls only
    state = tmp_path / "state"
    with_llm, without = (json.loads((state / f"fusion-{v}.json").read_text())["0"]
                         for v in ("lp-fused", "cf-fused"))
    assert with_llm["users"] == without["users"]
    assert set(without["weights"]) == {"popularity", "itemknn"}
    assert len(result.results["cf-fused"][0]) == 5
    # the report shows each source's share of the fitted weights, per variant and history
    summary = summarize(result)
    shares = summary["fusion"]["cf-fused"]["full"]
    assert set(shares) == {"popularity", "itemknn"} and sum(shares.values()) == pytest.approx(1)
    md = markdown(summary)
    assert "| variant | history | llm | popularity | itemknn |" in md
    assert "| cf-fused | full | - |" in md
    # the judged difference: lp-fused minus cf-fused over the same users, tested
    judged = summary["populations"]["llm_sample"]["settings"]["full"]["judged"]["lp-fused"]
    rows = summary["populations"]["llm_sample"]["settings"]["full"]["rows"]
    assert judged["against"] == "cf-fused"
    assert judged["ndcg@10"]["delta"] == pytest.approx(
        rows["lp-fused"]["ndcg@10"] - rows["cf-fused"]["ndcg@10"])
    assert "| judged run | against |" in md and "| lp-fused | cf-fused |" in md
    with pytest.raises(ValueError, match="fuse_llm = false needs fusion"):
        config(variants=[{"name": "x", "method": "logprob", "fuse_llm": False}])
    with pytest.raises(ValueError, match="not another run of this config"):
        config(variants=[{"name": "x", "method": "logprob", "judge_against": "x"}])
    with pytest.raises(ValueError, match="nor item-vector rows"):  # no [item_vectors] table
        config(variants=[{"name": "x", "method": "logprob", "fusion": ["minilm_mapped"]}])
    with_rows = config(item_vectors={"models": ["m"]}, variants=[
        {"name": "x", "method": "logprob", "fusion": ["llm_mapped.m", "minilm_centred"]}])
    assert "llm_centred.m" in with_rows.fusable
    chosen = config(item_vectors={"models": ["m"], "rows": ["llm_mapped.m"]})
    assert chosen.fusable[-1] == "llm_mapped.m" and "llm_centred.m" not in chosen.fusable
    with pytest.raises(ValueError, match=r"rows \['llm_mapped.other'\] are not rows"):
        config(item_vectors={"models": ["m"], "rows": ["llm_mapped.other"]})
    with pytest.raises(ValueError, match="goes with protocol kind llmrank or pipeline"):
        config(protocol={"kind": "rating"}, item_vectors={"models": ["m"]})


def test_a_refit_with_other_weights_does_not_reuse_the_fused_results(
    store, tmp_path, monkeypatch
) -> None:
    cfg = config(users={"llm_sample": 5}, variants=[
        {"name": "lp-fused", "method": "logprob", "explain": False,
         "fusion": ["popularity"], "fit_users": 2}])
    harness(cfg, store, tmp_path).run(ScriptedClient(*[LOGPROB_ANSWER] * 7))
    # the same config and folder, but the fit now gives all the weight to popularity
    monkeypatch.setattr(eval.harness, "fit_weights",
                        lambda *a, **k: ({"llm": 0.0, "popularity": 1.0}, 0.0))
    result = harness(cfg, store, tmp_path).run(ScriptedClient(*[LOGPROB_ANSWER] * 2))
    popularity = {r.user: r.ranking[:3] for r in result.results["popularity"][0]}
    fused = result.results["lp-fused"][0]
    assert fused and all(r.ranking == popularity[r.user] for r in fused)
    assert len(list((tmp_path / "state").glob("lp-fused-*.jsonl"))) == 2


def test_cross_fitted_fusion_scores_every_user_with_weights_fitted_outside_its_fold(
    store, tmp_path, monkeypatch
) -> None:
    fits: list[list[str]] = []

    def by_fold(examples: Any, names: Any, **_: Any) -> tuple[dict[str, float], float]:
        # the first fold's fit trusts popularity alone, the second the LLM alone
        fits.append([target for _, _, target in examples])
        return ({"llm": 0.0, "popularity": 1.0} if len(fits) == 1
                else {"llm": 1.0, "popularity": 0.0}), 0.0

    monkeypatch.setattr(eval.harness, "fit_weights", by_fold)
    client = ScriptedClient(*[LOGPROB_ANSWER] * USERS)
    cfg = config(users={"llm_sample": "all"}, variants=[
        {"name": "lp-fused", "method": "logprob", "explain": False,
         "fusion": ["popularity"], "fit_users": 2, "fit_folds": 2}])
    result = harness(cfg, store, tmp_path).run(client)
    assert len(result.llm_users) == USERS
    assert len(client.requests) <= USERS  # a validation user's call is its evaluation call
    groups = folds(result.llm_users, 2, cfg.seed)
    assert sorted(u for g in groups for u in g) == sorted(result.llm_users)
    record = json.loads((tmp_path / "state" / "fusion-lp-fused.json").read_text())
    assert len(record) == 2 == len(fits)
    for group, fit in zip(groups, record, strict=True):
        assert len(fit["0"]["users"]) == 2 and not set(fit["0"]["users"]) & set(group)
    popularity = {r.user: r.ranking[:3] for r in result.results["popularity"][0]}
    cases = {c.user: c for c in result.cases[0]}
    fused = {r.user: r.ranking for r in result.results["lp-fused"][0]}
    assert set(fused) == set(result.llm_users)
    assert all(fused[u] == popularity[u] for u in groups[0])
    assert all(fused[u][0] == cases[u].candidates[2] for u in groups[1])  # the LLM's "C"
    shares = summarize(result)["fusion"]["lp-fused"]["full"]
    assert shares == pytest.approx({"llm": 0.5, "popularity": 0.5})
    with pytest.raises(ValueError, match="fit_folds needs fusion"):
        config(variants=[{"name": "x", "method": "logprob", "fit_folds": 2}])


def test_fusion_without_users_outside_the_sample_fails_before_any_call(store, tmp_path) -> None:
    client = ScriptedClient()
    cfg = config(users={"llm_sample": USERS}, variants=[
        {"name": "lp-fused", "method": "logprob", "fusion": ["popularity"], "fit_users": 2}])
    with pytest.raises(ConfigError, match=r"lp-fused.*lower users\.llm_sample"):
        harness(cfg, store, tmp_path).run(client)
    assert client.requests == []


def test_pipeline_calls_the_llm_only_where_the_target_was_retrieved(store, tmp_path) -> None:
    client = picks(10)
    cfg = config(protocol={"kind": "pipeline", "n_candidates": 5, "k": 3,
                           "llm_only_when_retrieved": True}, users={"llm_sample": 8})
    result = harness(cfg, store, tmp_path).run(client)
    cases = {c.user: c for c in result.cases[0]}
    hit = {u for u, c in cases.items() if c.target in c.candidates}
    assert 0 < len(hit) < len(cases)  # the tiny catalog has both kinds of user
    assert len(client.requests) == len(hit)
    rows = {r.user: r for r in result.results["zs"][0]}
    assert set(rows) == set(cases)  # nobody is dropped
    assert all(rows[u].llm_skipped == (u not in hit) for u in cases)
    assert all(cases[u].target not in rows[u].ranking for u in cases if u not in hit)
    validity = summarize(result)["validity"]["zs"]
    assert next(iter(validity.values()))["not_called"] == len(cases) - len(hit)
