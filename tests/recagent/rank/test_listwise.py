import json

import pytest

from recagent.errors import ResponseError, TransportError
from recagent.gate import assemble
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import ListwiseRanker, answer_schema, labels_for, normalize_label
from recagent.types import Candidate, Interaction, Item
from tests.fakes import ScriptedClient


def item(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


CANDIDATES = [Candidate(item=item(i), rank=n, score=1 - n / 10, nearest_history_id="100")
              for n, i in enumerate([11, 12, 13, 14, 15])]
HISTORY = [(Interaction(item_id="100", liked=True), item(100))]
TITLES = {"100": "Movie 100"}


def answer(*pairs: tuple[str, str]) -> str:
    return json.dumps({"ranking": [{"id": i, "reason": r} for i, r in pairs]})


def ranker(client: ScriptedClient, **kw) -> ListwiseRanker:
    return ListwiseRanker(client, PromptLibrary(), **kw)


def test_labels_are_distinct_and_short() -> None:
    labels = labels_for(30)
    assert labels[:3] == ["A", "B", "C"] and labels[26:28] == ["AA", "AB"]
    assert len(set(labels)) == 30
    assert normalize_label(" [b]. ") == "B"


def test_schema_pins_ids_to_labels_and_bounds_sizes() -> None:
    schema = answer_schema(["A", "B", "C"], 2)
    ranking = schema["properties"]["ranking"]
    assert ranking["items"]["properties"]["id"]["enum"] == ["A", "B", "C"]
    assert ranking["minItems"] == ranking["maxItems"] == 2
    assert ranking["items"]["properties"]["reason"]["maxLength"] > 0


def test_labels_map_back_to_candidate_ids() -> None:
    client = ScriptedClient(answer(("C", "tense like Movie 100"), ("a", "same director")))
    result = ranker(client).rank(HISTORY, CANDIDATES, 2)
    assert result.order == [("13", "tense like Movie 100"), ("11", "same director")]
    assert result.invocation.attempts == 1
    assert result.invocation.template == "rank_zero_shot"
    assert client.requests[0]["schema"]["properties"]["ranking"]["maxItems"] == 2


def test_unknown_labels_are_kept_aside_not_used() -> None:
    client = ScriptedClient(answer(("Z", "invented"), ("B", "fine")))
    result = ranker(client).rank(HISTORY, CANDIDATES, 2)
    assert result.order == [("12", "fine")] and result.unknown == ["Z"]


def test_invalid_json_is_reasked_once_with_the_error() -> None:
    client = ScriptedClient("Sure! Here are my picks: A, B", answer(("B", "ok"), ("A", "ok")))
    result = ranker(client).rank(HISTORY, CANDIDATES, 2)
    assert result.invocation.attempts == 2
    assert result.invocation.usage.prompt_tokens == 200
    reask = client.requests[1]["messages"]
    assert reask[-2] == {"role": "assistant", "content": "Sure! Here are my picks: A, B"}
    assert "not valid" in reask[-1]["content"]


def test_two_bad_answers_raise_with_raw_output_and_attempts() -> None:
    client = ScriptedClient("nope", '{"rank": []}')
    with pytest.raises(ResponseError) as info:
        ranker(client).rank(HISTORY, CANDIDATES, 2)
    assert info.value.raw == '{"rank": []}' and info.value.attempts == 2


def test_transport_errors_propagate_without_reask() -> None:
    client = ScriptedClient(TransportError("down"))
    with pytest.raises(TransportError):
        ranker(client).rank(HISTORY, CANDIDATES, 2)
    assert len(client.requests) == 1


def test_history_is_truncated_to_the_most_recent() -> None:
    history = [(Interaction(item_id=str(i), liked=True), item(i)) for i in range(200, 230)]
    client = ScriptedClient(answer(("A", "x")))
    ranker(client, max_history=5).rank(history, CANDIDATES, 1)
    prompt = client.requests[0]["messages"][-1]["content"]
    assert "Movie 229" in prompt and "Movie 225" in prompt and "Movie 224" not in prompt


def test_few_shot_demo_must_choose_among_its_candidates() -> None:
    from recagent.types import Demonstration
    bad = Demonstration(history_titles=["x"], candidate_titles=["a"], chosen_title="b", reason="r")
    with pytest.raises(ValueError, match="chosen title"):
        ranker(ScriptedClient(), template="rank_few_shot", demonstrations=[bad])


def test_explain_off_asks_for_letters_only_and_facade_explains_from_evidence() -> None:
    client = ScriptedClient(json.dumps({"ranking": [{"id": "B"}, {"id": "D"}]}))
    result = ranker(client, explain=False).rank(HISTORY, CANDIDATES, 2)
    entry = client.requests[0]["schema"]["properties"]["ranking"]["items"]
    assert entry["required"] == ["id"] and "reason" not in entry["properties"]
    assert result.order == [("12", None), ("14", None)]
    items, repairs = assemble(result.order, CANDIDATES, set(), 2, TITLES)
    assert [i.item_id for i in items] == ["12", "14"] and repairs == []
    assert all(i.source == "llm" and "Movie 100" in i.explanation for i in items)
