"""Mechanics of single-pass logprob ranking, the permutation bootstrap and score fusion,
with a scripted client at the LLMClient boundary and hand-computed expectations."""

import json
import math

import pytest

from recagent.errors import ConfigError, ResponseError
from recagent.gate import assemble
from recagent.llm.prompts import PromptLibrary
from recagent.rank.ensemble import (
    BootstrapRanker,
    FusionRanker,
    borda,
    fit_weights,
    fuse,
    normalised,
)
from recagent.rank.listwise import LLMRanking
from recagent.rank.logprob import LogprobRanker, label_scores
from recagent.types import Candidate, Completion, Interaction, Invocation, Item, Usage
from tests.fakes import ScriptedClient


def item(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


def cands(*ids: int, **sources: list[float]) -> list[Candidate]:
    return [Candidate(item=item(i), rank=n, score=0.0,
                      scores_by_source={s: v[n] for s, v in sources.items()})
            for n, i in enumerate(ids)]


HISTORY = [(Interaction(item_id="100", liked=True), item(100))]


def logprobs(top: dict[str, float]) -> Completion:
    return Completion(text="B", usage=Usage(prompt_tokens=50, completion_tokens=1),
                      top_logprobs=[top])


def test_label_scores_merge_token_variants_and_ignore_other_tokens() -> None:
    top = {"B": math.log(0.3), " B": math.log(0.1), "The": -0.1, "A": math.log(0.2), "Z": -1.0}
    scores = label_scores(top, ["A", "B", "C"])
    assert scores.keys() == {"A", "B"}
    assert scores["B"] == pytest.approx(math.log(0.4))
    assert scores["A"] == pytest.approx(math.log(0.2))


def test_logprob_ranker_maps_labels_back_to_ids_in_one_call() -> None:
    client = ScriptedClient(logprobs({"C": -0.5, "A": -1.0, "The": -0.2, "D": -3.0}))
    result = LogprobRanker(client, PromptLibrary()).rank(HISTORY, cands(11, 12, 13, 14), 3)
    # C > A > D, then B (not among the top logprobs) last
    assert [i for i, _ in result.order] == ["13", "11", "14"]
    assert result.scores["12"] < result.scores["14"] < result.scores["11"] < result.scores["13"]
    assert all(reason is None for _, reason in result.order)
    request = client.requests[0]
    assert request["max_tokens"] == 1 and request["top_logprobs"] == 20
    assert len(client.requests) == 1
    assert "[C] Movie 13" in request["messages"][-1]["content"]


def test_logprob_ranker_without_any_label_is_a_response_error() -> None:
    client = ScriptedClient(logprobs({"The": -0.1, "I": -2.0}))
    with pytest.raises(ResponseError):
        LogprobRanker(client, PromptLibrary()).rank(HISTORY, cands(11, 12), 1)
    with pytest.raises(ResponseError, match="no logprobs"):
        LogprobRanker(ScriptedClient("B"), PromptLibrary()).rank(HISTORY, cands(11, 12), 1)


def test_logprob_explanations_only_for_the_final_top_k() -> None:
    reasons = json.dumps({"reasons": [{"id": "B", "reason": "second"},
                                      {"id": "A", "reason": "first"}]})
    client = ScriptedClient(logprobs({"B": -0.1, "C": -0.2, "A": -3.0}), reasons)
    result = LogprobRanker(client, PromptLibrary(), explain=True).rank(
        HISTORY, cands(11, 12, 13), 2)
    assert result.order == [("12", "first"), ("13", "second")]
    schema = client.requests[1]["schema"]["properties"]["reasons"]
    assert schema["items"]["properties"]["id"]["enum"] == ["A", "B"]
    content = client.requests[1]["messages"][-1]["content"]
    assert "[A] Movie 12" in content and "[B] Movie 13" in content and "Movie 11" not in content


def test_logprob_bad_explanations_leave_items_to_the_evidence() -> None:
    client = ScriptedClient(logprobs({"A": -0.1}), "not json", "still not json")
    result = LogprobRanker(client, PromptLibrary(), explain=True).rank(HISTORY, cands(11, 12), 1)
    assert result.order == [("11", None)]
    assert len(client.requests) == 3  # the explanations were re-asked once
    inv = result.invocation
    assert inv.fallback is not None and "unusable explanations" in inv.fallback
    assert inv.attempts == 2 and inv.usage.prompt_tokens == 250
    items, repairs = assemble(result.order, cands(11, 12), set(), 1, {"100": "Movie 100"})
    assert items[0].explanation and repairs == []


def test_borda_points_by_hand() -> None:
    # n = 3: first place 3 points, second 2, third 1
    assert borda([["a", "b"], ["b", "c", "a"]], 3) == {"a": 4.0, "b": 5.0, "c": 2.0}


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


def test_validation_users_are_outside_the_sample_retrieved_and_nested() -> None:
    from eval.fusion import validation_users
    from eval.protocols import Case

    def case(n: int) -> Case:  # every third user's target was not retrieved
        return Case(user=f"u{n}", setting=0, history=(), target="t",
                    candidates=("x", "y") if n % 3 == 0 else ("x", "t", "y"))

    cases = [case(n) for n in range(30)]
    sample = {f"u{n}" for n in range(10)}
    small = validation_users(cases, sample, 6, seed=3)
    assert len(small) == 6 and not set(small) & sample
    assert all(int(u[1:]) % 3 for u in small)  # only users whose target can be found
    large = validation_users(cases, sample, 9, seed=3)
    assert set(small) <= set(large) and small == validation_users(cases, sample, 6, seed=3)
    assert len(validation_users(cases, sample, 100, seed=3)) == 14  # all that qualify


def test_folds_partition_the_users_evenly_and_by_seed() -> None:
    from eval.fusion import folds

    users = [f"u{n}" for n in range(23)]
    groups = folds(users, 5, seed=3)
    assert sorted(u for g in groups for u in g) == sorted(users)  # each user exactly once
    assert sorted(len(g) for g in groups) == [4, 4, 5, 5, 5]
    assert all(g == sorted(g, key=users.index) for g in groups)  # input order kept
    assert groups == folds(users, 5, seed=3) and groups != folds(users, 5, seed=4)


def test_a_shuffled_pass_sees_the_order_of_the_matching_bootstrap_pass() -> None:
    from recagent.rank.ensemble import ShuffledRanker

    boot_inner, one_inner = OrderRanker(["13"]), OrderRanker(["13"])
    BootstrapRanker(boot_inner, 3, seed=4).rank(HISTORY, cands(11, 12, 13, 14, 15), 1)
    ShuffledRanker(one_inner, 2, seed=4).rank(HISTORY, cands(11, 12, 13, 14, 15), 1)
    assert one_inner.seen == [boot_inner.seen[2]] and boot_inner.seen[2] != boot_inner.seen[0]
