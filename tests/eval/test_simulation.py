"""Episodes against scripted systems, and what the summary makes of them."""

from __future__ import annotations

import random

import pytest

from eval.conversation_config import SimulationProtocol
from eval.conversation_rows import ChatAnswer
from eval.simulated_user import RulesUser
from eval.simulation import PopularityChat, llm_wording, run_episode, stated_filter
from eval.simulation_metrics import summarise_episodes
from recagent.errors import TransportError
from recagent.llm.prompts import PromptLibrary
from recagent.types import Item
from tests.fakes import ScriptedClient

ITEMS = {str(n): Item(id=str(n), title=f"Film {n} (19{50 + n})", text="",
                      metadata={"year": 1950 + n, "genres": "Drama" if n % 2 else "Comedy"})
         for n in range(1, 31)}
PROTOCOL = SimulationProtocol(kind="simulation", judgement="test", k=3, max_turns=4)


class FindsItOnTurn:
    """Shows the target on turn `n` (1-based), plus one item outside the catalog."""

    def __init__(self, target: str, n: int) -> None:
        self.target, self.n, self.turn, self.heard = target, n, 0, list[str]()

    def send(self, message: str) -> ChatAnswer:
        self.turn += 1
        self.heard.append(message)
        shown = [self.target] if self.turn == self.n else ["1", "2"]
        return ChatAnswer([*shown, "not-an-item"], violations=1)


def test_an_episode_stops_at_success_and_counts_everything() -> None:
    target = ITEMS["13"]
    user = RulesUser(target, [ITEMS["4"]], random.Random(0))
    system = FindsItOnTurn("13", 3)
    record = run_episode(system, user, ITEMS, PROTOCOL) | {"episode": 0}
    assert len(record["turns"]) == 3 and record["turns"][-1]["hit"]
    assert system.heard[0] == "I loved Film 4 (1954). I'm in the mood for drama."
    assert system.heard[1] == "I've seen the first one. Something from the 1960s."
    assert all(t["outside"] == 1 and t["violations"] == 1 for t in record["turns"])
    # by turn 2 the user asked for drama from the 1960s: Film 1 (drama, 1951) and Film 2
    # (comedy, 1952) are both off the request
    assert record["turns"][1]["off_request"] == 2
    never = run_episode(PopularityChat(["1", "2", "3", "4"], 3), user, ITEMS, PROTOCOL)
    summary = summarise_episodes([record, never | {"episode": 1}], PROTOCOL.max_turns)
    assert summary["success@2"] == 0.0 and summary["success@3"] == pytest.approx(0.5)
    assert summary["success@4"] == pytest.approx(0.5)
    assert summary["mean_turns_to_success"] == 3
    assert summary["title_stated_to_system"] == 0 and summary["leaks_caught"] == 0


def test_a_wording_that_names_the_film_never_reaches_the_system() -> None:
    target = ITEMS["13"]
    system = FindsItOnTurn("13", 9)
    record = run_episode(system, RulesUser(target, [], random.Random(0)), ITEMS, PROTOCOL,
                         word=lambda m: f"{m} Maybe Film 13?" if "first" in m else m)
    assert [t["leaked"] for t in record["turns"]] == [False, True, False, False]
    assert not any("Film 13" in heard for heard in system.heard)
    assert summarise_episodes([record | {"episode": 0}], 4)["leaks_caught"] == 1


def test_popularity_shows_new_items_each_turn() -> None:
    chat = PopularityChat(["1", "2", "3", "4", "5"], 2)
    assert [chat.send("x").items for _ in range(3)] == [["1", "2"], ["3", "4"], ["5"]]


def test_the_stated_filter_grows_with_the_turns() -> None:
    user = RulesUser(ITEMS["13"], [], random.Random(0))
    assert stated_filter(user, 0).any_of == {"genres": ["Drama"]}
    assert stated_filter(user, 0).year_min is None
    assert (stated_filter(user, 1).year_min, stated_filter(user, 1).year_max) == (1960, 1969)


def test_the_llm_worded_user_passes_the_guard() -> None:
    """The LLM (scripted at the client boundary) words each message; one wording names the
    film, one call fails: the system hears neither the title nor an empty message."""
    target = ITEMS["13"]
    client = ScriptedClient(
        lambda messages: "Hey, any drama? " + messages[-1]["content"][-5:],
        "Oh, like Film 13 maybe, from the sixties",
        TransportError("down"),
        "ok whatever, something new")
    word = llm_wording(client, PromptLibrary())
    system = FindsItOnTurn("13", 9)
    record = run_episode(system, RulesUser(target, [], random.Random(0)), ITEMS, PROTOCOL,
                         word=word)
    assert "Can you recommend" not in system.heard[0] and system.heard[0].startswith("Hey")
    assert system.heard[1] == "I've seen the first one. Something from the 1960s."  # guarded
    assert system.heard[2].startswith("Not a fan of the second one.")  # the call failed
    assert system.heard[3] == "ok whatever, something new"
    assert [t["leaked"] for t in record["turns"]] == [False, True, False, False]
    assert "Can you recommend a movie?" in client.requests[0]["messages"][-1]["content"]
