"""Bootstrap, shuffles and score fusion (recagent/rank/ensemble.py), with hand-computed
expectations."""

import json

import pytest

from recagent.errors import ConfigError, ResponseError
from recagent.rank.ensemble import (
    BootstrapRanker,
    FusionRanker,
    fit_weights,
    fuse,
    normalised,
)
from recagent.rank.listwise import LLMRanking
from recagent.types import Invocation, Usage
from tests.fakes import HISTORY, cands


class OrderRanker:
    """A ranker that always prefers the same ids, wherever they stand: position-free."""

    def __init__(self, preference: list[str], fail_on: set[int] = frozenset()) -> None:
        self.preference, self.fail_on, self.seen = preference, fail_on, []

    def rank(self, history, candidates, k) -> LLMRanking:
        self.seen.append([c.item.id for c in candidates])
        if len(self.seen) - 1 in self.fail_on:
            raise ResponseError("bad pass", "", 1)
        order = [i for i in self.preference if i in {c.item.id for c in candidates}][:k]
        inv = Invocation(template="t", template_hash="h", model="m", messages=[], raw="r",
                         attempts=1, usage=Usage(prompt_tokens=10), latency_s=0.5)
        return LLMRanking(order=[(i, f"why {i}") for i in order], invocation=inv)


class FirstSlotRanker(OrderRanker):
    """A ranker with pure position bias: it always picks whatever comes first."""

    def rank(self, history, candidates, k) -> LLMRanking:
        self.preference = [c.item.id for c in candidates]
        return super().rank(history, candidates, k)


def test_bootstrap_shuffles_are_seeded_and_first_pass_keeps_the_order() -> None:
    inner = OrderRanker(["13"])
    boot = BootstrapRanker(inner, 4, seed=7)
    shuffles = boot.shuffles(cands(11, 12, 13, 14, 15))
    assert [c.item.id for c in shuffles[0]] == ["11", "12", "13", "14", "15"]
    assert all(sorted(c.item.id for c in s) == ["11", "12", "13", "14", "15"] for s in shuffles)
    assert len({tuple(c.item.id for c in s) for s in shuffles}) > 1
    assert [[c.item.id for c in s] for s in boot.shuffles(cands(11, 12, 13, 14, 15))] == \
        [[c.item.id for c in s] for s in shuffles]


def test_bootstrap_aggregates_and_sums_the_cost() -> None:
    inner = OrderRanker(["13", "11", "12"])
    result = BootstrapRanker(inner, 3).rank(HISTORY, cands(11, 12, 13), 2)
    assert result.order == [("13", "why 13"), ("11", "why 11")]
    assert result.invocation.usage.prompt_tokens == 30 and result.invocation.attempts == 3
    assert len(json.loads(result.invocation.raw)["passes"]) == 3


def test_bootstrap_dilutes_pure_position_bias() -> None:
    single = FirstSlotRanker([]).rank(HISTORY, cands(11, 12, 13, 14, 15, 16), 1)
    assert single.order[0][0] == "11"  # the biased ranker picks the first slot
    result = BootstrapRanker(FirstSlotRanker([]), 6, seed=1).rank(
        HISTORY, cands(11, 12, 13, 14, 15, 16), 1)
    assert max(result.scores.values()) < 6  # no item won every pass


def test_bootstrap_survives_a_failed_pass_but_not_all() -> None:
    result = BootstrapRanker(OrderRanker(["12"], fail_on={1}), 3).rank(HISTORY, cands(11, 12), 1)
    assert result.order[0][0] == "12"
    failed = json.loads(result.invocation.raw)["failed"]
    assert len(failed) == 1 and failed[0].startswith("ResponseError: bad pass")
    with pytest.raises(ResponseError, match="all 2 bootstrap passes failed"):
        BootstrapRanker(OrderRanker([], fail_on={0, 1}), 2).rank(HISTORY, cands(11, 12), 1)


def test_normalise_and_fuse_by_hand() -> None:
    assert normalised({"a": 1.0, "b": 3.0, "c": 2.0}, ["a", "b", "c", "d"]) == \
        {"a": 0.0, "b": 1.0, "c": 0.5, "d": 0.0}
    assert normalised({"a": 1.0, "b": 1.0}, ["a", "b"]) == {"a": 0.0, "b": 0.0}
    fused = fuse({"x": {"a": 0, "b": 10}, "y": {"a": 4, "b": 2}}, {"x": 1.0, "y": 3.0}, ["a", "b"])
    assert fused == {"a": 3.0, "b": 1.0}


def test_fusion_ranker_combines_llm_order_and_candidate_scores() -> None:
    candidates = cands(11, 12, 13, pop=[10.0, 0.0, 5.0])
    llm = OrderRanker(["12", "13", "11"])  # k=2, Borda over n=3: 12 → 3, 13 → 2, 11 → 0
    only_pop = FusionRanker(None, {"pop": 1.0}).rank(HISTORY, candidates, 3)
    assert [i for i, _ in only_pop.order] == ["11", "13", "12"]
    assert only_pop.order[0][1] is None  # no LLM, no reasons: the facade explains
    both = FusionRanker(llm, {"llm": 2.0, "pop": 1.0}).rank(HISTORY, candidates, 2)
    # llm normalised: 12 → 1, 13 → 2/3, 11 → 0; pop: 11 → 1, 13 → 0.5, 12 → 0
    assert [i for i, _ in both.order] == ["12", "13"]
    assert both.scores == pytest.approx({"12": 2.0, "13": 4 / 3 + 0.5, "11": 1.0})
    assert dict(both.order)["12"] == "why 12"


def test_fusion_weights_are_checked() -> None:
    with pytest.raises(ConfigError, match="all zero"):
        FusionRanker(None, {"pop": 0.0})
    with pytest.raises(ConfigError, match=">= 0"):
        FusionRanker(None, {"pop": -1.0})
    with pytest.raises(ConfigError, match="LLM ranker"):
        FusionRanker(None, {"llm": 1.0})


def test_fit_weights_finds_the_informative_source() -> None:
    # source "good" always scores the target highest; "noise" prefers another item
    examples = [({"good": {"a": 0, "b": 1, "c": 0}, "noise": {"a": 1, "b": 0, "c": 0}},
                 ["a", "b", "c"], "b"),
                ({"good": {"a": 1, "b": 0, "c": 0}, "noise": {"a": 0, "b": 0, "c": 1}},
                 ["a", "b", "c"], "a")]
    weights, score = fit_weights(examples, ["good", "noise"], grid=(0.0, 1.0))
    assert weights == {"good": 1.0, "noise": 0.0} and score == 1.0
    # a target outside the candidates scores 0 and still counts in the mean
    weights, score = fit_weights([*examples, ({}, ["a"], "zzz")], ["good", "noise"], (0.0, 1.0))
    assert score == pytest.approx(2 / 3)


def test_bagged_weights_mix_sources_that_each_win_some_users() -> None:
    # "a" puts the target first for four users, "b" for two: a single search picks "a"
    # alone; resamples sometimes favour "b", so the bagged weights keep some of it
    def example(winner: str) -> tuple[dict[str, dict[str, float]], list[str], str]:
        other = "b" if winner == "a" else "a"
        return ({winner: {"t": 1.0, "x": 0.0, "y": 0.5}, other: {"t": 0.0, "x": 1.0, "y": 0.5}},
                ["x", "y", "t"], "t")

    examples = [example("a")] * 4 + [example("b")] * 2
    single, _ = fit_weights(examples, ["a", "b"], (0.0, 1.0), resamples=0)
    assert single == {"a": 1.0, "b": 0.0}
    bagged, score = fit_weights(examples, ["a", "b"], (0.0, 1.0), resamples=50, seed=1)
    assert bagged["a"] > bagged["b"] > 0 and bagged["a"] + bagged["b"] == pytest.approx(1.0)
    assert bagged == fit_weights(examples, ["a", "b"], (0.0, 1.0), resamples=50, seed=1)[0]
    assert 0 < score <= 1


def test_a_shuffled_pass_sees_the_order_of_the_matching_bootstrap_pass() -> None:
    from recagent.rank.ensemble import ShuffledRanker

    boot_inner, one_inner = OrderRanker(["13"]), OrderRanker(["13"])
    BootstrapRanker(boot_inner, 3, seed=4).rank(HISTORY, cands(11, 12, 13, 14, 15), 1)
    ShuffledRanker(one_inner, 2, seed=4).rank(HISTORY, cands(11, 12, 13, 14, 15), 1)
    assert one_inner.seen == [boot_inner.seen[2]] and boot_inner.seen[2] != boot_inner.seen[0]
