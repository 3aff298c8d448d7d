"""Rating prediction through the public API, with the LLM scripted at the client boundary."""

import json

import pytest

from recagent.errors import ConfigError, ResponseError
from recagent.llm.prompts import PromptLibrary
from recagent.rank.rating import RatingPredictor
from recagent.types import Item
from tests.fakes import ScriptedClient

ALIEN = Item(id="1", title="Alien (1979)", text="Alien (1979). Genres: Horror, Sci-Fi.")
BABE = Item(id="2", title="Babe (1995)", text="Babe (1995). Genres: Children's, Comedy.")
HEAT = Item(id="3", title="Heat (1995)", text="Heat (1995). Genres: Action, Crime.")
FARGO = Item(id="4", title="Fargo (1996)", text="Fargo (1996). Genres: Crime, Drama.")


def rated(*pairs: tuple[str, float]) -> str:
    return json.dumps({"ratings": [{"id": i, "rating": r} for i, r in pairs]})


def test_ratings_map_back_to_items_and_the_prompt_shows_the_examples() -> None:
    client = ScriptedClient(rated(("b", 2), ("A", 4)))
    out = RatingPredictor(client, PromptLibrary()).predict([(ALIEN, 5), (BABE, 1)], [HEAT, FARGO])
    assert out.ratings == {"3": 4, "4": 2} and out.missing == []
    prompt = client.requests[0]["messages"][-1]["content"]
    assert "Alien (1979). Genres: Horror, Sci-Fi.: 5/5" in prompt and "[B] Fargo" in prompt
    schema = client.requests[0]["schema"]["properties"]["ratings"]
    assert schema["items"]["properties"]["id"]["enum"] == ["A", "B"]
    assert schema["items"]["properties"]["rating"]["maximum"] == 5


def test_partial_off_scale_and_duplicate_answers_leave_targets_missing() -> None:
    client = ScriptedClient(rated(("A", 9), ("A", 3), ("Z", 4)))
    out = RatingPredictor(client, PromptLibrary()).predict([(ALIEN, 5)], [HEAT, FARGO])
    assert out.ratings == {"3": 3} and out.missing == ["4"]


def test_unparseable_answer_is_reasked_once_then_a_response_error_with_the_raw_text() -> None:
    with pytest.raises(ResponseError) as err:
        RatingPredictor(ScriptedClient("five stars", "four stars"), PromptLibrary()).predict(
            [], [HEAT])
    assert err.value.raw == "four stars" and err.value.raws == ["five stars", "four stars"]
    assert err.value.attempts == 2
    client = ScriptedClient("five stars", rated(("A", 4)))
    out = RatingPredictor(client, PromptLibrary()).predict([], [HEAT])
    assert out.ratings == {"3": 4} and out.attempts == 2
    assert out.usage.prompt_tokens == 200 and out.raw == rated(("A", 4))
    with pytest.raises(ConfigError):
        RatingPredictor(ScriptedClient(), PromptLibrary()).predict([(ALIEN, 5)], [])
