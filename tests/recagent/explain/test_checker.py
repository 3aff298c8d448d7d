"""The checker, on hand-written sentences: what may ship and, for what may not, why."""

from __future__ import annotations

import pytest

from recagent.explain.checker import Checker, same_sentence, text_problem
from recagent.explain.evidence import gather
from recagent.types import Candidate, Evidence, Interaction, Item

# The item explained is Return of the Jedi (1983); the user liked Star Wars and The Usual
# Suspects (Star Wars is cited: 60% of its fans liked Jedi) and disliked Toy Story.
EARLIER = ["Because you liked Star Wars, this one ends the saga."]


@pytest.fixture
def setting(items: dict[str, Item], genres: list[str], titles: list[str]
            ) -> tuple[Checker, Evidence, list[Item]]:
    history = [items["50"], items["12"], items["1"]]
    interactions = [(Interaction(item_id="50", liked=True), items["50"]),
                    (Interaction(item_id="12", rating=5), items["12"]),
                    (Interaction(item_id="1", liked=False), items["1"])]
    (evidence,) = gather([Candidate(item=items["181"], rank=0, score=1.0,
                                    scores_by_source={"semantic": 1.0},
                                    nearest_history_id="50")], interactions)
    evidence = evidence.model_copy(update={"because": [
        evidence.because[0].model_copy(update={"strength": 0.6})]})
    return Checker(genres, titles), evidence, history


@pytest.mark.parametrize("sentence", [
    "Because you liked Star Wars, this sci-fi adventure ends the saga.",
    "Because you liked Star Wars (1977): 60% of people who liked it also liked Return of the "
    "Jedi (1983); both share Action, Adventure and Sci-Fi.",
    "Fans of The Usual Suspects and Star Wars (1977) get more space action here.",
    "A crime story like The Usual Suspects, with the romance of Star Wars.",  # named: its genres
    "Usual Suspects, The (1995) fans: this is a clever twist on the space war film.",
    "A heat wave of space battles, for you as a fan of Star Wars.",  # 'heat', not Heat
    "Return of the Jedi finishes the story you loved in Star Wars.",
    "About 59 percent of Star Wars fans liked it too.",  # within a point of 60%
    "Toy Story aside, you will enjoy this war adventure.",  # in the history, if disliked
])
def test_grounded_sentences_pass(setting, sentence: str) -> None:
    checker, evidence, history = setting
    assert checker.check(sentence, evidence, history, earlier=EARLIER) == []


@pytest.mark.parametrize(("sentence", "kinds"), [
    ("", ["empty"]),
    ("...", ["empty"]),
    ("A is the best candidate for you.", ["label_talk"]),
    ("Pick [C]: like Star Wars.", ["label_talk"]),
    ("The user liked Star Wars, so this fits.", ["meta_talk"]),
    ("#2 is close to Star Wars.", ["meta_talk"]),
    ("a great saga a great saga a great saga a great saga", ["looping"]),
    ("because you liked Star Wars -- this one ends the saga", ["repeated"]),
    # an opening single word is not taken for a title, but 'kids' is a genre word
    ("Kids is a well-known film in the user's history.", ["meta_talk", "unknown_genre",
                                                          "claims_seen"]),
    ("A well-known film like Kids, in your history.", ["unknown_genre", "claims_seen"]),
    ("Because you liked Heat, more action for you.", ["unknown_title"]),
    ("Because you liked Star Wars and Fargo, you will like this.", ["unknown_title"]),
    ("Like Star Trek: The Wrath of Khan, a space adventure.", ["unknown_title"]),
    ("As good as Alien (1979), a classic of the genre.", ["unknown_title"]),  # not in catalog
    ("Star Wars (1980) fans will love the sequel.", ["unknown_title"]),  # not its year
    ("A romantic comedy in the spirit of Star Wars.", ["unknown_genre"]),
    ("A crime thriller for fans of Star Wars.", ["unknown_genre"]),  # Suspects not named
    ("An animated treat after Star Wars.", ["unknown_genre"]),
    ("90% of people who liked Star Wars also liked it.", ["unknown_number"]),
    ("You already watched Return of the Jedi, a Star Wars sequel.", ["claims_seen"]),
    ("You liked The Return of the Jedi (1983); 60% of people who liked Star Wars did too.",
     ["claims_seen"]),
    ("Return of the Jedi (1983), which you rated highly, follows Star Wars.", ["claims_seen"]),
    ("Worth a rewatch after Star Wars.", ["claims_seen"]),
    ("You have seen it: the end of the Star Wars saga.", ["claims_seen"]),
    ("Return of the Jedi is already in your watch list after Star Wars.", ["claims_seen"]),
    ("Return of the Jedi (1983). Genres: Action, Adventure, Sci-Fi.", ["bare_metadata"]),
    ("Return of the Jedi (1983), Action, Sci-Fi, War.", ["bare_metadata"]),
])
def test_ungrounded_sentences_fail_with_typed_reasons(setting, sentence: str,
                                                      kinds: list[str]) -> None:
    checker, evidence, history = setting
    failures = checker.check(sentence, evidence, history, earlier=EARLIER)
    assert sorted({f.kind for f in failures}) == sorted(kinds)
    assert all(f.detail for f in failures)


def test_titles_match_leniently(setting) -> None:
    checker, evidence, history = setting
    for said in ["The Usual Suspects", "Usual Suspects", "the usual suspects",
                 "Usual Suspects, The (1995)", "THE USUAL SUSPECTS (1995)"]:
        assert checker.check(f"A twisty story for fans of {said}.", evidence, history) == []


def test_titles_of_the_request_are_known_without_a_catalog(setting, items, genres) -> None:
    _, evidence, history = setting
    bare = Checker(genres)
    sentence = "Because you liked Star Wars, like Fargo it is a great pick."
    assert bare.check(sentence, evidence, history) == []  # Fargo unknown to this checker
    failures = bare.check(sentence, evidence, history, titles=[items["100"].title])
    assert [f.kind for f in failures] == ["unknown_title"]


def test_a_title_holding_a_genre_word_is_not_a_genre_claim(items, genres) -> None:
    history = [items["9"]]  # The War Room, a documentary
    (evidence,) = gather([Candidate(item=items["100"], rank=0, score=1.0,
                                    nearest_history_id="9")],
                         [(Interaction(item_id="9", liked=True), items["9"])])
    checker = Checker(genres)
    ok = "Because you liked The War Room (1993), try Fargo (1996), a crime story."
    assert checker.check(ok, evidence, history) == []
    bad = "Because you liked The War Room, a war story."
    assert [f.kind for f in checker.check(bad, evidence, history)] == ["unknown_genre"]


def test_the_gate_rules_are_the_checkers() -> None:
    assert text_problem("   ") == "empty"
    assert text_problem("Candidate B matches.") == "label_talk"
    assert text_problem("A tense crime thriller like Heat.") is None  # 'A' is an article
    # a title opening with initials is not a label; a bare letter with a full stop is
    assert text_problem("L.A. Confidential (1997) was picked for you from the catalog.") is None
    assert text_problem("E.T. the Extra-Terrestrial (1982) is another pick for you.") is None
    assert text_problem("B. Because it fits.") == "label_talk"
    assert text_problem("C: a crime story.") == "label_talk"
    assert text_problem("Like Heat.", ["like heat!"]) == "repeated"
    assert same_sentence("Like  Heat.", "like heat") and not same_sentence("Heat", "Heat 2")


def test_every_movielens_item_has_a_template_the_checker_passes() -> None:
    """Titles with initials ('B. Monkey', 'L.A. Confidential'), moved articles ("Enfer, L'")
    and the video marker ('(1995) (V)') once had every template refused, so a refused
    sentence shipped (10 items). Now, even with no source to cite (the fewest templates),
    one passes for each of the 1682 ML-100K items."""
    from recagent.explain import templates
    from tests.conftest import ML100K

    if not (ML100K / "u.item").is_file():
        pytest.skip(f"{ML100K} not present")
    refused = []
    for line in (ML100K / "u.item").read_text(encoding="latin-1").splitlines():
        item_id, title = line.split("|")[:2]
        checker = Checker()
        scope = checker.scope([], [title])
        evidence = Evidence(item_id=item_id, title=title)
        if all(checker.check_in(s, evidence, scope) for s in templates.sentences(evidence)):
            refused.append(title)
    assert refused == []
    # and a bare label with a full stop is still label talk, a title's initials are not
    checker = Checker()
    monkey = Evidence(item_id="1679", title="B. Monkey (1998)", sources=["semantic"])
    scope = checker.scope([], [monkey.title])
    assert checker.check_in("B. Monkey (1998) was picked for you from the catalog.", monkey,
                            scope) == []
    assert [f.kind for f in checker.check_in("B. Because it fits you.", monkey, scope)] == [
        "label_talk"]
