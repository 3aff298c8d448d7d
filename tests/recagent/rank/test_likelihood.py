"""Likelihood scoring (recagent/rank/likelihood.py) and its factory entry, with a fake
scorer at the ContinuationScorer boundary and hand-computed expectations."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import pytest
from fakes import HISTORY, ScriptedClient, cands, movie

from recagent.errors import ConfigError, ResponseError, TransportError
from recagent.llm.prompts import PromptLibrary
from recagent.llm.scoring import Continuations
from recagent.rank.factory import RankerSpec, build_ranker, ranker_templates
from recagent.rank.likelihood import LikelihoodRanker, liked_titles
from recagent.types import Interaction, Usage

NEUTRAL = "Movies this viewer loved, oldest first:\nThe next movie they watched and loved:"


class FakeScorer:
    """Scores `text` after `prefix` with `value(prefix, text)`; records every request."""

    model = "fake"

    def __init__(self, value: Callable[[str, str], float]) -> None:
        self.value = value
        self.requests: list[tuple[str, list[str]]] = []
        self.fail: Exception | None = None

    def continuation_logprobs(self, prefix: str, continuations: Sequence[str]) -> Continuations:
        self.requests.append((prefix, list(continuations)))
        if self.fail is not None:
            raise self.fail
        return Continuations(logprobs=[self.value(prefix, c) for c in continuations],
                             tokens=[3] * len(continuations),
                             usage=Usage(prompt_tokens=10 * len(continuations),
                                         completion_tokens=len(continuations)),
                             latency_s=0.5)

    def neutral_asks(self) -> list[str]:
        return [text for prefix, texts in self.requests if prefix == NEUTRAL for text in texts]


# After the history, "Movie 12" is most likely; without one, "Movie 11" is. Movie n's
# title is "Movie n" (tests/fakes.py), scored as " Movie n".
HISTORY_LP = {" Movie 11": -5.0, " Movie 12": -4.0, " Movie 13": -9.0, " Movie 14": -6.0}
NEUTRAL_LP = {" Movie 11": -2.0, " Movie 12": -6.0, " Movie 13": -8.0, " Movie 14": -6.5}


def table(prefix: str, text: str) -> float:
    return (NEUTRAL_LP if prefix == NEUTRAL else HISTORY_LP)[text]


def test_the_score_is_history_minus_neutral() -> None:
    scorer = FakeScorer(table)
    ranking = LikelihoodRanker(scorer, PromptLibrary()).rank(HISTORY, cands(11, 12, 13, 14), 3)
    assert ranking.scores == {"11": -3.0, "12": 2.0, "13": -1.0, "14": 0.5}
    assert ranking.order == [("12", None), ("14", None), ("13", None)]
    history_prefix, texts = scorer.requests[0]
    assert history_prefix.endswith("Movie 100\nThe next movie they watched and loved:")
    assert texts == [" Movie 11", " Movie 12", " Movie 13", " Movie 14"]
    raw = json.loads(ranking.invocation.raw)
    assert raw["history"]["12"] == -4.0 and raw["neutral"]["12"] == -6.0
    assert ranking.invocation.usage.prompt_tokens == 80  # both requests counted
    assert ranking.invocation.latency_s == pytest.approx(1.0)
    assert ranking.invocation.template == "likelihood" and ranking.invocation.model == "fake"


def test_the_neutral_term_is_asked_once_per_item_across_users() -> None:
    scorer = FakeScorer(table)
    ranker = LikelihoodRanker(scorer, PromptLibrary())
    ranker.rank(HISTORY, cands(11, 12, 13), 2)
    other = [(Interaction(item_id="99", rating=5), movie(99))]
    second = ranker.rank(other, cands(12, 13, 14), 2)
    assert scorer.neutral_asks() == [" Movie 11", " Movie 12", " Movie 13", " Movie 14"]
    assert len(scorer.requests) == 4 and ranker.cached_priors == 4
    assert second.scores == {"12": 2.0, "13": -1.0, "14": 0.5}  # cached priors still used
    assert json.loads(second.invocation.raw)["neutral_asked"] == 1
    ranker.rank(HISTORY, cands(14, 11), 1)  # all priors held: one request, the history's
    assert len(scorer.requests) == 5 and scorer.requests[-1][0] != NEUTRAL


def test_only_given_candidates_once_each_and_ties_keep_their_order() -> None:
    scorer = FakeScorer(lambda prefix, text: -1.0)
    candidates = cands(13, 11, 13, 12)
    ranking = LikelihoodRanker(scorer, PromptLibrary()).rank(HISTORY, candidates, 10)
    assert [i for i, _ in ranking.order] == ["13", "11", "12"]
    assert set(ranking.scores) == {"11", "12", "13"}
    assert all(len(texts) == len(set(texts)) == 3 for _, texts in scorer.requests)


def test_history_shows_liked_items_only_most_recent_last() -> None:
    history = [(Interaction(item_id="1", liked=True), movie(1)),
               (Interaction(item_id="2", rating=1), movie(2)),
               (Interaction(item_id="3", liked=False), movie(3)),
               (Interaction(item_id="4", rating=5), movie(4)),
               (Interaction(item_id="5"), movie(5))]
    assert liked_titles(history, 20) == ["Movie 1", "Movie 4", "Movie 5"]
    assert liked_titles(history, 2) == ["Movie 4", "Movie 5"]
    scorer = FakeScorer(lambda prefix, text: -1.0)
    LikelihoodRanker(scorer, PromptLibrary(), max_history=2).rank(history, cands(11), 1)
    prefix = scorer.requests[0][0]
    assert "Movie 4\nMovie 5\nThe next movie" in prefix and "Movie 1" not in prefix


def test_a_history_without_likes_scores_every_item_zero() -> None:
    scorer = FakeScorer(table)
    history = [(Interaction(item_id="2", rating=1), movie(2))]
    ranking = LikelihoodRanker(scorer, PromptLibrary()).rank(history, cands(11, 12), 2)
    assert ranking.scores == {"11": 0.0, "12": 0.0}
    assert [i for i, _ in ranking.order] == ["11", "12"]


def test_scorer_errors_stay_recagent_errors_and_nothing_is_cached() -> None:
    scorer = FakeScorer(table)
    scorer.fail = TransportError("down")
    ranker = LikelihoodRanker(scorer, PromptLibrary())
    with pytest.raises(TransportError):
        ranker.rank(HISTORY, cands(11, 12), 1)
    assert ranker.cached_priors == 0
    scorer.fail = None
    assert ranker.rank(HISTORY, cands(11, 12), 1).order == [("12", None)]


@pytest.mark.parametrize("bad", [[-1.0], [-1.0, math.nan], [-1.0, -math.inf, -2.0]])
def test_a_wrong_or_non_finite_answer_is_a_response_error(bad: list[float]) -> None:
    class Broken(FakeScorer):
        def continuation_logprobs(self, prefix: str,
                                  continuations: Sequence[str]) -> Continuations:
            return Continuations(logprobs=bad[:len(continuations) + 1])

    with pytest.raises(ResponseError, match="finite continuation logprobs"):
        LikelihoodRanker(Broken(table), PromptLibrary()).rank(HISTORY, cands(11, 12), 1)


def test_no_candidates_costs_no_request() -> None:
    scorer = FakeScorer(table)
    ranking = LikelihoodRanker(scorer, PromptLibrary()).rank(HISTORY, [], 3)
    assert ranking.order == [] and ranking.scores == {} and scorer.requests == []


def test_the_factory_builds_it_for_a_scorer_and_refuses_a_plain_client() -> None:
    spec = RankerSpec(method="likelihood")
    assert ranker_templates(spec) == ["likelihood", "likelihood_neutral"]
    ranker = build_ranker(spec, FakeScorer(table), PromptLibrary())
    assert isinstance(ranker, LikelihoodRanker) and ranker.neutral_template == "likelihood_neutral"
    with pytest.raises(ConfigError, match="prompt logprobs"):
        build_ranker(spec, ScriptedClient(), PromptLibrary())
    with pytest.raises(ConfigError, match="no prompt template 'mine'"):
        build_ranker(RankerSpec(method="likelihood", template="mine"), FakeScorer(table),
                     PromptLibrary())
    with pytest.raises(ValueError, match="do not depend on the candidates' order"):
        RankerSpec(method="likelihood", bootstrap=3)


def test_both_templates_render_with_strict_undefined_and_end_alike() -> None:
    library = PromptLibrary()
    history = library.render("likelihood", titles=["Alien (1979)", "Heat (1995)"])
    neutral = library.render("likelihood_neutral")
    assert [m["role"] for m in history.messages] == ["user"] == [m["role"] for m in
                                                                 neutral.messages]
    assert neutral.messages[0]["content"] == NEUTRAL
    text = history.messages[0]["content"]
    assert text.index("Alien (1979)") < text.index("Heat (1995)")
    assert text.endswith(NEUTRAL.splitlines()[-1])
    assert neutral.template_hash != history.template_hash
