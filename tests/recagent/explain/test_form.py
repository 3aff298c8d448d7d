"""The rules of form an LLM sentence must pass (issue 28, probe case 9 and the demo's
first item): cut off, too long, several sentences, or a copy of the evidence lines is
refused and the template ships instead."""

from __future__ import annotations

import pytest

from recagent.explain.checker import Checker, Worded
from recagent.explain.evidence import gather
from recagent.explain.form import copied_share
from recagent.types import Candidate, Interaction, Item

# What the prompt showed for Return of the Jedi, liked Star Wars (the evidence lines).
LINES = ("3. Return of the Jedi (1983) (genres: Action, Adventure, Romance, Sci-Fi, War)",
         "you liked Star Wars (1977); 60% of people who liked it also liked this one; both: "
         "Action, Adventure, Romance, Sci-Fi, War; of what you liked, the closest in content",
         "close in content to what you liked")


@pytest.fixture
def setting(items: dict[str, Item], genres: list[str], titles: list[str]):  # type: ignore[no-untyped-def]
    history = [items["50"]]
    (evidence,) = gather([Candidate(item=items["181"], rank=0, score=1.0,
                                    scores_by_source={"semantic": 1.0},
                                    nearest_history_id="50")],
                         [(Interaction(item_id="50", liked=True), items["50"])])
    evidence = evidence.model_copy(update={"because": [
        evidence.because[0].model_copy(update={"strength": 0.6})]})
    checker = Checker(genres, titles)
    return checker, evidence, checker.scope(history)


def kinds(setting, sentence: str, cut_off: bool = False) -> list[str]:  # type: ignore[no-untyped-def]
    checker, evidence, scope = setting
    return [f.kind for f in checker.check_in(sentence, evidence, scope,
                                             worded=Worded(LINES, cut_off))]


@pytest.mark.parametrize("sentence", [
    "Because you liked Star Wars, this sci-fi adventure ends the saga.",
    "Fans of Star Wars (1977) get the whole space war finished here!",
    "Return of the Jedi closes the story you loved in Star Wars.",
])
def test_a_sentence_in_its_own_words_passes(setting, sentence: str) -> None:  # type: ignore[no-untyped-def]
    assert kinds(setting, sentence) == []


@pytest.mark.parametrize(("sentence", "kind"), [
    # the demo's first item: the bullets pasted back and cut off at the schema's bound
    ("You liked Star Wars (1977); 60% of people who liked it also liked this one; of what "
     "you liked, the closest in content", "copies_evidence"),
    ("You liked Star Wars (1977); 60% of people who liked it,", "cut_off"),
    ("You", "cut_off"),
    ("Because you liked Star Wars, this one ends the saga. It is a fine space war film.",
     "several_sentences"),
    ("Because you liked Star Wars this long and winding space war adventure with its heroes "
     "and its villains and its many battles and its ending will surely keep you watching "
     "until the very last of its scenes.", "too_long"),
])
def test_a_sentence_that_reads_worse_than_the_template_is_refused(
        setting, sentence: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert kind in kinds(setting, sentence)


def test_a_cut_off_answer_is_refused_even_when_it_reads_whole(setting) -> None:  # type: ignore[no-untyped-def]
    sentence = "Because you liked Star Wars, this sci-fi adventure ends the saga."
    assert kinds(setting, sentence, cut_off=True) == ["cut_off"]


def test_titles_with_dots_are_one_sentence(items: dict[str, Item], genres: list[str]) -> None:
    """'L.A. Confidential' and 'E.T.' hold dots; a title counts as one word."""
    la = Item(id="302", title="L.A. Confidential (1997)", text="", metadata={"genres": "Crime"})
    checker = Checker(genres, [la.title])
    (evidence,) = gather([Candidate(item=la, rank=0, score=1.0, nearest_history_id="7",
                                    scores_by_source={"semantic": 1.0})],
                         [(Interaction(item_id="7", liked=True), items["7"])])
    failures = checker.check_in("L.A. Confidential is a sharp crime story for fans of Heat.",
                                evidence, checker.scope([items["7"]]), worded=Worded(()))
    assert failures == []


def test_the_copied_share_counts_word_trigrams() -> None:
    assert copied_share("a b c d", ["a b c d e"]) == 1.0
    assert copied_share("a b c x", ["a b c d e"]) == 0.5
    assert copied_share("two words", ["two words"]) == 0.0
