"""Few-shot demonstration selection: similarity order, no leaks, the token budget, and the
ListwiseRanker asking a selector per request (LLM scripted at the client boundary)."""

from __future__ import annotations

import json

import pytest

from recagent.llm.prompts import PromptLibrary
from recagent.rank.demonstrations import (
    DemonstrationSelector,
    estimate_tokens,
    jaccard,
)
from recagent.rank.listwise import ListwiseRanker, demonstration_vars
from recagent.types import Candidate, Demonstration, Interaction, Item
from tests.fakes import ScriptedClient


def item(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


def demo(user: str, history: list[int], chosen: int, *, negatives: tuple[int, ...] = (90, 91),
         title_len: int = 0) -> Demonstration:
    pad = "x" * title_len
    return Demonstration(
        history_titles=[f"Movie {i}{pad}" for i in history[-5:]],
        candidate_titles=[f"Movie {chosen}", *(f"Movie {n}" for n in negatives)],
        chosen_title=f"Movie {chosen}", reason="Fits.", user_id=user,
        history_ids=[str(i) for i in history], chosen_id=str(chosen),
    )


HISTORY = [(Interaction(item_id=str(i), liked=True), item(i)) for i in (1, 2, 3)]
TARGET = 50
CANDIDATES = [Candidate(item=item(i), rank=n, score=0.0) for n, i in enumerate([40, TARGET, 60])]


def users(demos: list[Demonstration]) -> list[str | None]:
    return [d.user_id for d in demos]


def test_jaccard() -> None:
    assert jaccard({"1", "2"}, {"2", "3"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 0.0


def test_most_similar_histories_come_first_ties_in_pool_order() -> None:
    pool = [
        demo("none", [7, 8], 70),              # J = 0
        demo("one", [1, 9], 71),               # J = 1/4
        demo("superset", [1, 2, 3, 4], 72),    # J = 3/4
        demo("pair", [1, 2], 73),              # J = 2/3
        demo("none2", [8, 9], 74),             # J = 0, after "none" in the pool
    ]
    selector = DemonstrationSelector(pool, 5, budget_tokens=10_000)
    assert users(selector.select(HISTORY, CANDIDATES)) == [
        "superset", "pair", "one", "none", "none2"]
    assert users(DemonstrationSelector(pool, 2, budget_tokens=10_000)
                 .select(HISTORY, CANDIDATES)) == ["superset", "pair"]


def test_fixed_order_keeps_the_pool_order() -> None:
    pool = [demo("a", [7], 70), demo("b", [1, 2, 3], 71), demo("c", [8], 72)]
    fixed = DemonstrationSelector(pool, 2, similar=False, budget_tokens=10_000)
    assert users(fixed.select(HISTORY, CANDIDATES)) == ["a", "b"]


@pytest.mark.parametrize("similar", [True, False])
def test_never_the_target_a_candidate_a_history_item_or_the_same_user(similar: bool) -> None:
    # The leaking donors are the most similar and first in the pool: they would be chosen.
    pool = [
        demo("chose-the-target", [1, 2, 3], TARGET),
        demo("chose-a-candidate", [1, 2, 3], 40),
        demo("chose-a-history-item", [1, 2, 3, 9], 2),
        demo("same-user", [1, 2, 3], 80),
        Demonstration(history_titles=["Movie 1", "Movie 2"], candidate_titles=["Movie 3", "x"],
                      chosen_title="Movie 3", reason="no ids"),     # by title: a history item
        demo("clean", [1, 9], 81),
        demo("clean2", [7], 82),
    ]
    selector = DemonstrationSelector(pool, 3, similar=similar, budget_tokens=10_000)
    chosen = selector.select(HISTORY, CANDIDATES, user_id="same-user")
    assert users(chosen) == ["clean", "clean2"]
    seen = {"1", "2", "3", *(c.item.id for c in CANDIDATES)}
    assert not any(d.chosen_id in seen for d in chosen)
    # Without the user's id the pool's own exclusion is what keeps the user out.
    guarded = DemonstrationSelector(pool, 3, similar=similar, budget_tokens=10_000,
                                    exclude_users={"same-user"})
    assert users(guarded.select(HISTORY, CANDIDATES)) == ["clean", "clean2"]


def test_budget_is_respected_and_a_shorter_demo_further_down_still_fits() -> None:
    pool = [demo("small", [1, 2, 3], 70), demo("huge", [1, 2, 3], 71, title_len=150),
            demo("small2", [1, 2], 72), demo("small3", [1], 73)]
    small, huge, small2 = (estimate_tokens(d) for d in pool[:3])
    budget = small + small2  # "huge" no longer fits after "small"; "small2" just does
    assert huge > small2
    chosen = DemonstrationSelector(pool, 3, budget_tokens=budget).select(HISTORY, CANDIDATES)
    assert users(chosen) == ["small", "small2"]
    assert sum(estimate_tokens(d) for d in chosen) <= budget
    for budget in (1, min(estimate_tokens(d) for d in pool) - 1):
        assert DemonstrationSelector(pool, 3, budget_tokens=budget).select(
            HISTORY, CANDIDATES) == []


@pytest.mark.parametrize("n,title_len", [(1, 3), (5, 20), (5, 200), (12, 60)])
@pytest.mark.parametrize("explain", [True, False])
def test_token_estimate_bounds_what_the_prompt_really_grows_by(
        n: int, title_len: int, explain: bool) -> None:
    library = PromptLibrary()
    d = Demonstration(history_titles=[f"H{i} " + "ab " * (title_len // 3) for i in range(n)],
                      candidate_titles=[f"C{i} " + "cd " * (title_len // 3) for i in range(n)],
                      chosen_title="C0 " + "cd " * (title_len // 3), reason="Fits the taste of H1.")
    base = dict(history=[{"text": "Alien (1979)", "feeling": "liked"}],
                candidates=[{"label": "A", "text": "Aliens (1986)"}], k=1, explain=explain)

    def chars(demos: list[Demonstration]) -> int:
        prompt = library.render("rank_few_shot", **base,
                                demonstrations=[demonstration_vars(x, explain) for x in demos])
        return sum(len(m["content"]) for m in prompt.messages)

    real = (chars([d]) - chars([])) / 4
    assert real <= estimate_tokens(d) <= 1.6 * real + 10


def test_a_demo_that_does_not_choose_among_its_candidates_is_refused() -> None:
    bad = Demonstration(history_titles=["x"], candidate_titles=["a"], chosen_title="b", reason="r")
    with pytest.raises(ValueError, match="chosen title"):
        DemonstrationSelector([bad], 1)


def test_listwise_ranker_asks_the_selector_per_request() -> None:
    pool = [demo("space", [1, 2], 70), demo("cartoons", [5, 6], 71)]
    client = ScriptedClient(*[json.dumps({"ranking": [{"id": "A"}]})] * 2)
    ranker = ListwiseRanker(client, PromptLibrary(), template="rank_few_shot", explain=False,
                            demonstrations=DemonstrationSelector(pool, 1))
    ranker.rank(HISTORY, CANDIDATES, 1)
    cartoon_fan = [(Interaction(item_id="5", liked=True), item(5))]
    ranker.rank(cartoon_fan, CANDIDATES, 1)
    first, second = (r["messages"] for r in client.requests)
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]
    assert "Movie 70" in first[1]["content"] and "Movie 71" not in first[1]["content"]
    assert "Movie 71" in second[1]["content"] and "Movie 70" not in second[1]["content"]
    assert first[2]["content"] == '{"ranking": [{"id": "A"}]}'  # Movie 70 is its candidate A


def test_fixed_demonstrations_still_work() -> None:
    client = ScriptedClient(json.dumps({"ranking": [{"id": "B"}]}))
    fixed = demo("d", [1], 70)
    ranker = ListwiseRanker(client, PromptLibrary(), template="rank_few_shot",
                            demonstrations=[fixed], explain=False)
    assert ranker.rank(HISTORY, CANDIDATES, 1).order == [(str(TARGET), None)]
    assert "Movie 70" in client.requests[0]["messages"][1]["content"]
