"""The LLM words the evidence (one call for the list); the checker decides what ships."""

from __future__ import annotations

import json

import pytest

from recagent.errors import ConfigError, TransportError
from recagent.explain import Explainer
from recagent.explain.wording import explanations_schema, write
from recagent.llm.prompts import PromptLibrary
from recagent.types import Candidate, Interaction, Item
from tests.fakes import ScriptedClient


def answer(*sentences: str | None, ids: list[str] | None = None) -> str:
    keys = ids or [str(n) for n in range(1, len(sentences) + 1)]
    return json.dumps({"explanations": [{"id": k, "sentence": s}
                                        for k, s in zip(keys, sentences, strict=True)
                                        if s is not None]})


@pytest.fixture
def case(items: dict[str, Item]) -> tuple[list[Candidate], list[tuple[Interaction, Item]]]:
    history = [(Interaction(item_id="50", liked=True), items["50"]),
               (Interaction(item_id="12", liked=True), items["12"])]
    chosen = [Candidate(item=items[i], rank=n, score=1.0, scores_by_source={"semantic": 1.0},
                        nearest_history_id=near)
              for n, (i, near) in enumerate([("181", "50"), ("100", "12"), ("7", "12")])]
    return chosen, history


def test_one_call_words_the_whole_list_from_its_evidence(case, genres) -> None:
    chosen, history = case
    client = ScriptedClient(answer(
        "Because you liked Star Wars, this sci-fi saga ends in style.",
        "A snowy crime story for a fan of The Usual Suspects.",
        "Another tense heist thriller in the spirit of The Usual Suspects."))
    out = Explainer(client, PromptLibrary(), genres=genres).explain(chosen, history)
    assert [r.kind for r in out.records] == ["llm"] * 3
    assert out.sentences[1] == "A snowy crime story for a fan of The Usual Suspects."
    assert (out.counts.llm, out.counts.replaced, out.counts.template) == (3, 0, 0)
    (request,) = client.requests
    prompt = request["messages"][-1]["content"]
    assert "1. Return of the Jedi (1983)" in prompt and "you liked Star Wars (1977)" in prompt
    assert "3. Heat (1995)" in prompt and "Toy Story" not in prompt
    schema = request["schema"]["properties"]["explanations"]
    assert schema["minItems"] == schema["maxItems"] == 3
    assert schema["items"]["properties"]["id"]["enum"] == ["1", "2", "3"]
    assert out.invocation is not None and out.invocation.template == "explain_items"


def test_a_failing_or_missing_sentence_is_replaced_by_a_template(case, genres) -> None:
    chosen, history = case
    client = ScriptedClient(answer(
        "Kids is a well-known film in the user's history.",
        None,
        "A tense heist thriller like The Usual Suspects.",
        "A second answer for item 3 is ignored.", ids=["1", "2", "3", "3"]))
    out = Explainer(client, PromptLibrary(), genres=genres).explain(chosen, history)
    assert [r.kind for r in out.records] == ["replaced", "replaced", "llm"]
    first, second, _ = out.records
    assert {f.kind for f in first.failures} >= {"meta_talk", "claims_seen"}
    assert first.rejected == "Kids is a well-known film in the user's history."
    assert [f.kind for f in second.failures] == ["missing"] and second.rejected is None
    assert out.sentences[0].startswith("Because you liked Star Wars (1977)")
    assert "Fargo (1996)" in out.sentences[1]
    assert out.sentences[2] == "A tense heist thriller like The Usual Suspects."
    assert (out.counts.llm, out.counts.replaced) == (1, 2)


def test_a_sentence_repeating_an_earlier_one_is_replaced(case, genres) -> None:
    chosen, history = case
    same = "A clever crime story for a fan of The Usual Suspects."
    client = ScriptedClient(answer("A space saga for a Star Wars fan.", same, same))
    out = Explainer(client, PromptLibrary(), genres=genres).explain(chosen, history)
    assert [r.kind for r in out.records] == ["llm", "llm", "replaced"]
    assert [f.kind for f in out.records[2].failures] == ["repeated"]
    assert len(set(out.sentences)) == 3


@pytest.mark.parametrize("replies", [("not json", "still not json"),
                                     (TransportError("connection refused"),)])
def test_a_failed_call_falls_back_to_templates(case, replies) -> None:
    chosen, history = case
    out = Explainer(ScriptedClient(*replies), PromptLibrary()).explain(chosen, history)
    assert [r.kind for r in out.records] == ["replaced"] * 3
    assert all([f.kind for f in r.failures] == ["llm_failed"] for r in out.records)
    assert all(s.strip() for s in out.sentences) and len(set(out.sentences)) == 3
    if isinstance(replies[0], str):  # the unusable answer is still audited
        assert out.invocation is not None and out.invocation.attempts == 2
    else:
        assert out.invocation is None


def test_a_setup_error_is_raised(case, tmp_path) -> None:
    chosen, history = case
    client = ScriptedClient(ConfigError("the server does not know model 'x'"))
    with pytest.raises(ConfigError, match="model 'x'"):
        Explainer(client, PromptLibrary()).explain(chosen, history)
    (tmp_path / "other.j2").write_text("<<user>>\nhi")
    with pytest.raises(ConfigError, match="explain_items"):
        Explainer(ScriptedClient(), PromptLibrary(tmp_path))  # checked before any work


def test_without_an_llm_or_when_told_not_to_no_call_is_made(case) -> None:
    chosen, history = case
    client = ScriptedClient()
    skipped = Explainer(client, PromptLibrary()).explain(chosen, history, use_llm=False)
    plain = Explainer().explain(chosen, history)
    assert client.requests == [] and skipped.invocation is None
    assert skipped.sentences == plain.sentences
    assert [r.kind for r in plain.records] == ["template"] * 3
    assert Explainer().explain([], history).sentences == []


def test_write_maps_numbers_back_to_positions(case, items) -> None:
    chosen, history = case
    from recagent.explain.evidence import gather
    evidence = gather(chosen, history)
    client = ScriptedClient(answer(" third ", "first", ids=["3", "1"]))
    sentences, invocation = write(client, PromptLibrary(), evidence)
    assert sentences == {2: "third", 0: "first"} and invocation.attempts == 1
    assert client.requests[0]["max_tokens"] == 20 + 70 * 3
    assert explanations_schema(2)["properties"]["explanations"]["items"]["properties"][
        "sentence"]["maxLength"] == 200
