"""Single-pass logprob ranking (recagent/rank/logprob.py), with a scripted client at the
LLMClient boundary and hand-computed expectations."""

import json
import math

import pytest

from recagent.errors import ResponseError
from recagent.gate import assemble
from recagent.llm.prompts import PromptLibrary
from recagent.rank.logprob import LogprobRanker, label_scores
from recagent.types import Completion, Usage
from tests.fakes import HISTORY, ScriptedClient, cands


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


def test_calibrated_scores_subtract_the_prior_and_floor_unscored_labels() -> None:
    from recagent.rank.logprob import calibrated
    got = calibrated({"A": -1.0, "B": -2.0, "C": -0.5}, {"A": -0.2, "B": -3.0})
    # C is not in the prior: it gets the prior's floor, -3.0 - 1
    assert got == pytest.approx({"A": -0.8, "B": 1.0, "C": 3.5})


def test_letter_calibration_reorders_by_prior_and_pays_its_call_once() -> None:
    # the user prompt prefers A slightly over B, but the content-free prompt prefers A a lot:
    # calibrated, B wins
    user = logprobs({"A": math.log(0.5), "B": math.log(0.4), "C": math.log(0.1)})
    prior = logprobs({"A": math.log(0.8), "B": math.log(0.1), "C": math.log(0.1)})
    client = ScriptedClient(user, prior, user)
    ranker = LogprobRanker(client, PromptLibrary(), calibrate="letters")
    first = ranker.rank(HISTORY, cands(11, 12, 13), 3)
    assert [i for i, _ in first.order] == ["12", "13", "11"]
    blank = client.requests[1]["messages"][-1]["content"]
    assert "[A] N/A" in blank and "Movie 1" not in blank
    assert first.invocation.usage.prompt_tokens == 100  # both calls counted
    second = ranker.rank(HISTORY, cands(14, 15, 16), 3)  # same count: the prior is cached
    assert len(client.requests) == 3
    assert [i for i, _ in second.order] == ["15", "16", "14"]
    assert second.invocation.usage.prompt_tokens == 50


def test_candidate_calibration_blanks_only_the_history_each_time() -> None:
    user = logprobs({"A": math.log(0.5), "B": math.log(0.4)})
    prior = logprobs({"A": math.log(0.9), "B": math.log(0.05)})
    client = ScriptedClient(user, prior, user, prior)
    ranker = LogprobRanker(client, PromptLibrary(), calibrate="candidates")
    assert [i for i, _ in ranker.rank(HISTORY, cands(11, 12), 2).order] == ["12", "11"]
    ranker.rank(HISTORY, cands(11, 12), 2)
    assert len(client.requests) == 4
    blank = client.requests[1]["messages"][-1]["content"]
    assert "[A] Movie 11" in blank and "N/A (watched)" in blank
    assert "Movie" not in blank.split("Candidates:")[0]


def test_calibrate_is_refused_outside_the_logprob_method() -> None:
    from recagent.rank.factory import RankerSpec
    with pytest.raises(ValueError, match="calibrate applies to method 'logprob' only"):
        RankerSpec(method="listwise", calibrate="letters")
