"""ranx metrics on hand-computed examples, failures scoring 0, and the random baseline's
expected NDCG@10 over 1+19 candidates."""

from __future__ import annotations

import math

import pytest

from eval.baselines import RandomScorer
from eval.metrics import NO_ANSWER, mean_metrics, paired_tests, qrels_for, run_for
from eval.per_user import baseline_result
from eval.protocols import Case
from eval.results import UserResult

# (1/20) * sum_{p=1..10} 1/log2(p+1), written out term by term:
# 1 + .63093 + .5 + .43068 + .38685 + .35621 + .33333 + .31546 + .30103 + .28906 = 4.54355
RANDOM_NDCG10_1_PLUS_19 = 4.54355 / 20


def case(user: str, target: str, candidates: list[str]) -> Case:
    return Case(user=user, setting=0, history=(), target=target, candidates=tuple(candidates))


def result(user: str, ranking: list[str], run: str = "r") -> UserResult:
    return UserResult(run=run, user=user, setting=0, history_len=1, ranking=ranking,
                      failed=not ranking)


def test_hand_computed_ndcg_and_hit_rate() -> None:
    cases = [case("a", "x", []), case("b", "y", [])]
    run = run_for("r", [result("a", ["x", "p", "q"]), result("b", ["p", "q", "y"])])
    got = mean_metrics(qrels_for(cases), run, ["ndcg@1", "ndcg@10", "hit_rate@1", "hit_rate@5"])
    # a: target first → 1; b: target third → 1/log2(4) = 0.5
    assert got["ndcg@10"] == pytest.approx((1 + 0.5) / 2)
    assert got["ndcg@1"] == pytest.approx(0.5)
    assert got["hit_rate@1"] == pytest.approx(0.5) and got["hit_rate@5"] == pytest.approx(1.0)


def test_a_failed_user_scores_zero_and_still_counts() -> None:
    cases = [case("a", "x", []), case("b", "y", []), case("c", "z", [])]
    results = [result("a", ["x"]), result("b", ["y"]), result("c", [])]
    run = run_for("r", results)
    assert run["c"] == {NO_ANSWER: 0.0}
    assert mean_metrics(qrels_for(cases), run, ["ndcg@10"])["ndcg@10"] == pytest.approx(2 / 3)


def test_ranx_gives_the_hand_computed_expectation_of_a_random_order() -> None:
    # The target at each of the 20 positions once: exactly the expectation of a random order.
    cands = [f"i{n}" for n in range(20)]
    cases = [case(f"u{p}", cands[p], cands) for p in range(20)]
    run = run_for("all_positions", [result(f"u{p}", cands) for p in range(20)])
    exact = sum(1 / math.log2(p + 1) for p in range(1, 11)) / 20
    assert exact == pytest.approx(RANDOM_NDCG10_1_PLUS_19, abs=1e-5)
    got = mean_metrics(qrels_for(cases), run, ["ndcg@10"])["ndcg@10"]
    assert got == pytest.approx(exact, abs=1e-9)


def test_the_random_baseline_comes_close_to_its_expectation() -> None:
    cands = [f"i{n}" for n in range(20)]
    cases = [case(f"u{n}", cands[n % 20], cands) for n in range(4000)]
    scorer = RandomScorer(seed=11)
    run = run_for("random", [baseline_result(scorer, c) for c in cases])
    got = mean_metrics(qrels_for(cases), run, ["ndcg@10"])["ndcg@10"]
    # per-user NDCG@10 has sd ≈ 0.31, so the mean of 4000 has sd ≈ 0.005
    assert got == pytest.approx(RANDOM_NDCG10_1_PLUS_19, abs=0.02)


def test_paired_test_reports_the_difference_against_the_reference() -> None:
    cands = ["x", "p", "q", "s"]
    cases = [case(f"u{n}", "x", cands) for n in range(30)]
    good = run_for("good", [result(f"u{n}", ["x", "p", "q"]) for n in range(30)])
    bad = run_for("bad", [result(f"u{n}", ["p", "q", "x"] if n % 3 else ["x", "p"])
                          for n in range(30)])
    tests = paired_tests(qrels_for(cases), bad, [good])
    ndcg = tests["good"]["ndcg@10"]
    # bad: 10 users at 1.0 and 20 at 0.5 → 2/3; good: 1.0
    assert ndcg["delta"] == pytest.approx(1 - 2 / 3)
    assert ndcg["significant"] and 0 <= ndcg["p"] < 0.05
