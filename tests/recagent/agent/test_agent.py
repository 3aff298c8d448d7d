"""Agent turns on a real embedded Chroma, the planner scripted at the client boundary:
hard limits hold, ungrounded arguments are dropped, failures fall back to the rules path
flagged with their step, and the trace records the plan and every call."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from recagent.agent.agent import Agent, gate
from recagent.agent.catalog import CatalogIndex, Limits, asked
from recagent.agent.tools import FindTitles, TurnState
from recagent.agent.types import Condition, FilterArgs, TitlesArgs
from recagent.chat.profile import violations
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.chat.session import ChatSession
from recagent.errors import ConfigError, TransportError
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import ChatTurn, Item, PreferenceProfile, RankedItem
from retrieval.collaborative import CoOccurrenceRetriever
from retrieval.store import CatalogStore
from tests.fakes import ScriptedClient
from tests.recagent.agent.plans import Make, movie, plan, step


def stars(index: CatalogIndex, turn: ChatTurn) -> list[list[str]]:
    return [index.item_values(i.item_id).get("star", []) for i in turn.items]


def genres(index: CatalogIndex, turn: ChatTurn) -> list[list[str]]:
    return [index.item_values(i.item_id).get("genres", []) for i in turn.items]


def test_a_person_and_an_excluded_genre_hold(make_session: Make, index: CatalogIndex) -> None:
    s = make_session(plan(step("filter", include=[{"attribute": "star", "values": ["Don Cheadle"]}],
                               exclude=[{"attribute": "genre", "values": ["Drama"]}]),
                          step("recommend")))
    turn = s.send("anything with don cheadle? but no drama")
    assert [i.title for i in turn.items] == ["Ocean's Eleven (2001)"]
    assert turn.agent is not None and turn.agent.valid and not turn.degraded
    assert [c.tool for c in turn.agent.calls] == ["filter", "recommend"]
    assert turn.agent.calls[0].buffer_in == -1 and turn.agent.calls[0].buffer_out == 1


def test_values_the_message_does_not_say_are_not_applied(make_session: Make,
                                                         index: CatalogIndex) -> None:
    s = make_session(plan(step("filter", include=[{"attribute": "star",
                                                   "values": ["Tom Hanks", "Nobody Atall"]}]),
                          step("recommend")), k=5)
    turn = s.send("a film about space please")
    assert turn.agent is not None
    kinds = [r.kind for r in turn.agent.repairs]
    assert kinds == ["ungrounded", "ungrounded"]  # not said; not in the catalog
    assert turn.agent.calls[0].result == "no limit left to apply"
    assert len(turn.items) == 5 and any("Tom Hanks" not in s for s in stars(index, turn))


def test_named_titles_become_seeds_and_are_never_shown(make_session: Make) -> None:
    s = make_session(plan(step("find_titles", titles=["Alien", "Jaws"]),
                          step("similar_to"), step("recommend")))
    turn = s.send("I watched Alien last night, what else")
    assert turn.agent is not None
    assert [r.title for r in turn.matched] == ["Alien (1979)"]
    assert "Alien (1979)" in [r.title for r in turn.profile.liked]
    assert "Alien (1979)" not in [i.title for i in turn.items]
    assert turn.items[0].title == "Aliens (1986)"
    assert [r.kind for r in turn.agent.repairs] == ["ungrounded"]  # Jaws was never said


@pytest.mark.parametrize(("message", "expected"), [
    ("Have you seen Gone Girl (2014)?", True),
    ("gone girl (2014) ? is it any good", True),
    ("have you watched Gone Girl or something like it", True),
    ("I loved Gone Girl (2014). Have you seen it?", False),
    ("Gone Girl was great! what else?", False),
    ("I liked Gone Grl", False),  # not written as given: counted as stated
])
def test_a_title_named_in_a_question_is_asked_about(message: str, expected: bool) -> None:
    assert asked("Gone Girl", message) is expected


@pytest.mark.parametrize(("message", "expected"), [
    # A taste stated right before the title outweighs the question mark ending the sentence.
    ("I loved Gone Girl (2014), have you seen Alien?", False),
    ("yes I have seen Gone Girl (2014) who is in Alien?", False),
    ("Is there something like Gone Girl (2014)?", False),
    ("Have you seen anything like Gone Girl?", False),
    # Another title named before it ends the lead-in: its cue is not this title's.
    ("yes I have seen Alien (1979) who is in Gone Girl (2014)?", True),
    ("I loved Alien (1979), have you seen Gone Girl?", True),
    # A list shares the cue before its first title; a far question mark is about something else.
    ("I love Alien (1979) and Gone Girl (2014), know any like them?", False),
    ("I love Alien (1979), Gone Girl and more, any new movies you know like this out now?", False),
    ("Is Gone Girl (2014) a scary one?", True),
])
def test_the_cue_nearest_before_a_title_decides_whether_it_is_asked_about(
        message: str, expected: bool) -> None:
    assert asked("Gone Girl", message, ["Alien (1979)", "Alien", "Gone Girl"]) is expected


def test_a_title_asked_about_is_shown_first_and_never_recorded_as_liked(
        make_session: Make) -> None:
    s = make_session(plan(step("find_titles", titles=["Alien"]), step("similar_to"),
                          step("recommend")),
                     plan(step("recommend")))
    turn = s.send("Have you seen Alien? something like it")
    assert turn.agent is not None and not turn.degraded
    assert turn.items[0].title == "Alien (1979)"
    assert turn.items[1].title == "Aliens (1986)"  # the rest: like it, as when stated
    assert len(turn.items) == 3 and len({i.item_id for i in turn.items}) == 3
    assert turn.profile.liked == [] and turn.matched == []
    later = s.send("and now?")
    assert "Alien (1979)" not in [r.title for r in later.profile.liked]


def test_a_title_asked_about_that_breaks_a_limit_is_not_shown(make_session: Make,
                                                                index: CatalogIndex) -> None:
    s = make_session(plan(step("find_titles", titles=["Alien"]),
                          step("filter", exclude=[{"attribute": "genres", "values": ["Horror"]}]),
                          step("recommend")), k=5)
    turn = s.send("have you seen Alien? no horror please")
    assert turn.agent is not None and not turn.degraded
    assert "Alien (1979)" not in [i.title for i in turn.items] and len(turn.items) == 5
    assert all("Horror" not in g for g in genres(index, turn))


def test_a_genre_word_is_not_the_film_named_like_it(items: list[Item]) -> None:
    """"In the mood for comedy" names the genre, which the rules read, not "The Comedy
    (2012)": as a liked seed it steered whole simulated dialogues away."""
    index = CatalogIndex([*items, movie("m17|The Comedy|2012|Drama|Tim Heidecker|Rick "
                                        "Alverson|Rich men drift through Brooklyn.")])
    find = FindTitles(index)
    state = TurnState(message="I'm in the mood for comedy", profile=PreferenceProfile(),
                      shown=(), k=5)
    got, said = find(state, TitlesArgs(titles=["comedy"]), 0)
    assert got.seeds == () and said == "found nothing"
    assert [r.kind for r in got.repairs] == ["ungrounded"] and "genre" in got.repairs[0].detail
    named = replace(state, message="I loved The Comedy (2012)")
    assert find(named, TitlesArgs(titles=["The Comedy (2012)"]), 0)[0].seeds == ("m17",)


def test_similar_to_follows_the_products_retrieval_not_text_alone(
        store: CatalogStore, index: CatalogIndex) -> None:
    """Everyone who liked Alien also liked Groundhog Day: the product's collaborative
    retrieval puts it first, and text closeness brings Aliens (the sequel) second."""
    rows = [(f"u{n}", item) for n in range(3) for item in ("m10", "m14")]
    recommender = Recommender(store, CoOccurrenceRetriever(store, rows), None)
    client = ScriptedClient(plan(step("find_titles", titles=["Alien"]), step("similar_to"),
                                 step("recommend")))
    agent = Agent(client, PromptLibrary(), ProfileRecommender(recommender), index)
    turn = ChatSession(recommender, client, PromptLibrary(), k=3, agent=agent).send(
        "I loved Alien, what next")
    assert turn.agent is not None and not turn.degraded
    assert [i.title for i in turn.items[:2]] == ["Groundhog Day (1993)", "Aliens (1986)"]
    assert len(turn.items) == 3 and "Alien (1979)" not in [i.title for i in turn.items]


def test_similar_to_over_the_catalog_is_the_products_own_list(make_session: Make) -> None:
    """With the seeds liked, the product's own candidates and ranking are the list: a
    similar_to step before recommend changes nothing (its scores are kept)."""
    with_step = make_session(plan(step("find_titles", titles=["Alien"]), step("similar_to"),
                                  step("recommend")), k=5)
    without = make_session(plan(step("find_titles", titles=["Alien"]), step("recommend")), k=5)
    message = "Alien, what else"
    turn = with_step.send(message)
    assert turn.agent is not None and turn.agent.calls[1].buffer_out == -1  # not narrowed
    got = [i.item_id for i in turn.items]
    assert got == [i.item_id for i in without.send(message).items] and len(got) == 5


def test_an_item_disliked_or_only_seen_is_never_a_seed(make_session: Make) -> None:
    s = make_session(plan(step("find_titles", titles=["Alien"]), step("recommend")),
                     plan(step("find_titles", titles=["the second one", "the third one"]),
                          step("filter", include=[{"attribute": "genres",
                                                   "values": ["Sci-Fi"]}]),
                          step("similar_to"), step("recommend")), k=5)
    shown = s.send("I loved Alien")
    turn = s.send("not a fan of the second one, I've seen the third one. sci-fi")
    disliked, seen = shown.items[1].title, shown.items[2].title
    assert [r.title for r in turn.profile.disliked] == [disliked]
    assert [r.title for r in turn.profile.seen] == [seen]
    assert turn.agent is not None
    similar = turn.agent.calls[2]
    assert similar.tool == "similar_to" and "Alien (1979)" in similar.result
    assert disliked not in similar.result and seen not in similar.result


def test_similar_to_keeps_a_filtered_buffer_in_the_products_order(
        store: CatalogStore, index: CatalogIndex) -> None:
    rows = [(f"u{n}", item) for n in range(3) for item in ("m10", "m14", "m1")]
    rows += [("u9", "m10"), ("u9", "m2")]
    recommender = Recommender(store, CoOccurrenceRetriever(store, rows), None)
    engine = ProfileRecommender(recommender)
    comedies = [i for i in index.items if index.item_values(i)["genres"] == ["Comedy"]]
    got = engine.similar(["m10"], comedies, 10)
    assert sorted(got) == sorted(comedies)  # the whole buffer, nothing from outside it
    assert got[0] == "m14"  # the most co-liked first, then text and retrieval in turns
    assert got.index("m1") < got.index("m2")  # 3 users liked m1 with Alien, 1 m2


def test_the_rules_limits_hold_whatever_the_plan(make_session: Make, index: CatalogIndex) -> None:
    s = make_session(plan(step("find_titles", titles=["The Shining"]), step("similar_to"),
                          step("recommend")), k=5)
    turn = s.send("something like The Shining, no horror, nothing before 1990")
    assert turn.items
    for item in turn.items:
        assert not violations(index.items[item.item_id], turn.profile)
    assert all("Horror" not in g for g in genres(index, turn))


def test_a_tool_failing_mid_plan_falls_back_flagged(make_session: Make,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_session(plan(step("find_titles", titles=["Alien"]), step("similar_to"),
                          step("recommend")), k=3)
    assert s.agent is not None

    def broken(state: TurnState, args: object, n: int) -> tuple[TurnState, str]:
        raise RuntimeError("chroma went away")

    monkeypatch.setitem(s.agent.executor.tools, "similar_to", broken)
    turn = s.send("I loved Alien")
    assert turn.degraded and turn.agent is not None
    assert turn.agent.degraded_step == "tool"
    assert "RuntimeError" in (turn.agent.degraded_reason or "")
    assert [c.tool for c in turn.agent.calls] == ["find_titles"]  # what ran before it
    rules = s.engine.recommend(turn.profile, 3)
    assert [i.item_id for i in turn.items] == [i.item_id for i in rules.items]
    assert any("the agent failed at its tool step" in n for n in turn.notes)
    assert len(turn.items) == 3 and "Alien (1979)" not in [i.title for i in turn.items]


def test_a_tool_past_its_budget_falls_back(make_session: Make,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    s = make_session(plan(step("similar_to", titles=["Alien"]), step("recommend")),
                     budgets_s={"similar_to": 0.05})
    assert s.agent is not None

    def slow(state: TurnState, args: object, n: int) -> tuple[TurnState, str]:
        time.sleep(1.0)
        return state, "late"

    monkeypatch.setitem(s.agent.executor.tools, "similar_to", slow)
    turn = s.send("like Alien")
    assert turn.degraded and turn.agent is not None and turn.agent.degraded_step == "tool"
    assert "ToolTimeout" in (turn.agent.degraded_reason or "") and turn.items


@pytest.mark.parametrize("answer", [TransportError("connection refused"), "not json at all",
                                    '{"steps": "recommend"}'])
def test_no_usable_plan_falls_back_to_the_rules(make_session: Make,
                                                 answer: str | Exception) -> None:
    s = make_session(answer, k=3)
    turn = s.send("I loved Alien, no horror")
    assert turn.degraded and turn.agent is not None and turn.agent.degraded_step == "plan"
    assert turn.agent.plan == [] and len(turn.items) == 3
    assert "Alien (1979)" in [r.title for r in turn.profile.liked]  # the rules read it


def test_the_trace_shows_the_plan_calls_and_repairs(make_session: Make) -> None:
    raw = plan(step("find_titles", titles=["Groundhog Day"]), step("web_search", q="x"),
               step("similar_to"))
    s = make_session(raw)
    turn = s.send("more like Groundhog Day")
    trace = turn.agent
    assert trace is not None and trace.raw_plan == raw and trace.model == "scripted"
    assert not trace.valid
    assert [r.kind for r in trace.repairs] == ["unknown_tool", "added_recommend"]
    assert [st.tool for st in trace.plan] == ["find_titles", "similar_to", "recommend"]
    assert [c.tool for c in trace.calls] == ["find_titles", "similar_to", "recommend"]
    assert all(c.latency_s >= 0 and c.result for c in trace.calls)
    assert trace.prompt_tokens == 100 and trace.completion_tokens == 20
    request = s.client_script.requests[0]  # type: ignore[attr-defined]
    lengths = [v["maxItems"] for v in request["schema"]["properties"]["steps"]["anyOf"]]
    assert max(lengths) == 6
    assert "Message: more like Groundhog Day" in request["messages"][-1]["content"]


def test_one_llm_call_per_turn(make_session: Make) -> None:
    s = make_session(plan(step("recommend")), plan(step("recommend")))
    s.send("a comedy please")
    s.send("something newer")
    assert len(s.client_script.requests) == 2  # type: ignore[attr-defined]


def test_the_gate_names_every_broken_constraint(index: CatalogIndex) -> None:
    def ranked(item_id: str) -> RankedItem:
        return RankedItem(item_id=item_id, title=index.items.get(item_id, index.items["m1"]).title,
                          score=1.0, explanation="x")

    profile = PreferenceProfile(exclude_genres=["Horror"])
    limits = Limits() + FilterArgs(include=[Condition(attribute="star", values=["tom hanks"])])
    problems = gate([ranked("m1"), ranked("m1"), ranked("m5"), ranked("m6"), ranked("zz")],
                    index, profile, limits)
    assert len(problems) == 4  # twice, ruled-out genre, no Tom Hanks, not in the catalog
    assert gate([ranked("m1"), ranked("m2")], index, profile, limits) == []


def test_an_agent_session_restores_only_with_its_agent(make_session: Make) -> None:
    s = make_session(plan(step("recommend")))
    s.send("a comedy please")
    saved = s.to_json()
    with pytest.raises(ConfigError, match="agent session"):
        ChatSession.from_json(saved, s.recommender, None, PromptLibrary())
    again = ChatSession.from_json(saved, s.recommender, None, PromptLibrary(), agent=s.agent)
    assert again.agent is s.agent and again.turns == 1


def test_a_title_year_does_not_ground_a_year_limit(make_session: Make) -> None:
    s = make_session(plan(step("filter", year_min=1993, year_max=1993), step("recommend")),
                     k=4)
    turn = s.send("I loved Groundhog Day (1993), what else")
    assert turn.agent is not None and turn.agent.calls[0].result == "no limit left to apply"
    assert [r.kind for r in turn.agent.repairs] == ["ungrounded", "ungrounded"]
    assert any("1993" not in i.title for i in turn.items)
