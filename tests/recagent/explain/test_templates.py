"""Template explanations: they cite the history and the strongest evidence, never repeat
within a list, are never bare metadata, and always pass the checker."""

from __future__ import annotations

import random

import pytest

from recagent.explain import Explainer
from recagent.explain.checker import Checker
from recagent.explain.evidence import gather
from recagent.explain.templates import display_title, sentences
from recagent.types import Candidate, Evidence, HistoryLink, Interaction, Item

TRICKY_TITLES = [
    "Usual Suspects, The (1995)", "War Room, The (1993)", "Kids (1995)", "Heat (1995)",
    "Comedy of Errors, A (1984)", "Horror Hotel (1960)", "Manchurian Candidate, The (1962)",
    "History of the World: Part I (1981)", "M (1931)", "Die Hard (1988)", "Die Hard 2 (1990)",
    "Western Union (1941)", "Crime Story (1993)", "It's My Party (1996)", "1941 (1979)",
    "Romance (1999)", "Star Wars (1977)", "Fantasia (1940)", "Liked (2001)", "People (2004)",
    "Because of Him (1946)", "Number 23, The (2007)", "Rewatch (2010)", "Close (2019)",
    "Dramatic School (1938)", "L'Avventura (1960)", "Lion King, The (1994)", "Seven (Se7en) (1995)",
]


def random_item(rng: random.Random, item_id: str, title: str, genres: list[str]) -> Item:
    chosen = rng.sample(genres[1:], rng.randint(0, 3))
    metadata: dict[str, str | int | float | bool] = {f"genre_{g}": g in chosen for g in genres}
    if rng.random() < 0.8:
        metadata["year"] = int(title[-5:-1]) if title.endswith(")") else 1990
    return Item(id=item_id, title=title, text=title, metadata=metadata)


def random_case(rng: random.Random, genres: list[str], pool: list[str]
                ) -> tuple[list[Candidate], list[tuple[Interaction, Item]]]:
    """A history of 1-4 liked items and 1-6 chosen items, with random sources, nearest
    items and shared genres."""
    titles = rng.sample(pool, rng.randint(2, 10))
    n_history = rng.randint(1, min(4, len(titles) - 1))
    items = [random_item(rng, str(n), t, genres) for n, t in enumerate(titles)]
    history = [(Interaction(item_id=i.id, liked=rng.random() < 0.85, ts=n), i)
               for n, i in enumerate(items[:n_history])]
    sources = ["semantic", "cooccurrence", "popularity", "profile", "rrf", "bpr"]
    chosen = [Candidate(item=i, rank=n, score=1.0,
                        scores_by_source={s: 1.0 for s in rng.sample(sources, rng.randint(0, 3))},
                        nearest_history_id=rng.choice([None, *(h.id for _, h in history)]))
              for n, i in enumerate(items[n_history:])]
    return chosen, history


def with_strengths(rng: random.Random, evidence: Evidence) -> Evidence:
    links = [link.model_copy(update={"strength": rng.choice([None, rng.random()])})
             for link in evidence.because]
    return evidence.model_copy(update={"because": links,
                                       "popularity": rng.choice([None, rng.randint(0, 900)])})


def test_every_template_sentence_for_many_random_evidences_passes_the_checker(
        genres: list[str], titles: list[str]) -> None:
    rng = random.Random(7)
    pool = sorted(set(TRICKY_TITLES + titles))
    checker = Checker(genres, pool)
    checked = 0
    for _ in range(300):
        chosen, history = random_case(rng, genres, pool)
        items = [item for _, item in history]
        for position, evidence in enumerate(gather(chosen, history)):
            evidence = with_strengths(rng, evidence)
            for sentence in sentences(evidence, position):
                failures = checker.check(sentence, evidence, items)
                assert failures == [], (sentence, failures)
                checked += 1
    assert checked > 3000


def test_a_list_never_repeats_a_sentence_and_every_one_passes(genres: list[str],
                                                              titles: list[str]) -> None:
    rng = random.Random(11)
    pool = sorted(set(TRICKY_TITLES + titles))
    explainer = Explainer(genres=genres, titles=pool)
    for _ in range(200):
        chosen, history = random_case(rng, genres, pool)
        same = [c.model_copy(update={"item": c.item.model_copy(update={"title": "Twin (1990)"})})
                for c in chosen]  # the same title for every item: still never repeated
        for case in (chosen, same):
            out = explainer.explain(case, history)
            assert len(set(out.sentences)) == len(out.sentences) == len(case)
            assert [r.kind for r in out.records] == ["template"] * len(case)
            for n, (sentence, evidence) in enumerate(zip(out.sentences, out.evidence,
                                                         strict=True)):
                assert explainer.checker.check(sentence, evidence, [i for _, i in history],
                                               earlier=out.sentences[:n]) == []


def test_the_sentence_cites_the_history_item_and_the_strongest_evidence(items) -> None:
    history = [(Interaction(item_id="50", liked=True), items["50"])]
    (evidence,) = gather([Candidate(item=items["181"], rank=0, score=1.0,
                                    scores_by_source={"semantic": 1.0, "cooccurrence": 1.0},
                                    nearest_history_id="50")], history)
    link = evidence.because[0].model_copy(update={"strength": 0.62})
    evidence = evidence.model_copy(update={"because": [link]})
    assert sentences(evidence)[0] == (
        "Because you liked Star Wars (1977): 62% of people who liked it also liked Return of "
        "the Jedi (1983); the two are close in content; both share Action, Adventure and "
        "Romance.")
    assert sentences(evidence, 1)[0].startswith("Since you liked Star Wars (1977): 62%")


def test_a_second_liked_item_is_cited_for_what_it_shares(items) -> None:
    history = [(Interaction(item_id=i, liked=True), items[i]) for i in ("12", "7")]
    (evidence,) = gather([Candidate(item=items["100"], rank=0, score=1.0,
                                    scores_by_source={"semantic": 1.0},
                                    nearest_history_id="12")], history)
    assert sentences(evidence)[0] == (
        "Because you liked The Usual Suspects (1995): Fargo (1996) is close in content to it; "
        "both share Crime and Thriller; both from the 1990s; it shares Crime and Thriller with "
        "Heat (1995), which you also liked.")


@pytest.mark.parametrize(("sources", "popularity", "expected"), [
    (["semantic"], None, "Fargo (1996) is a close content match for the titles you liked."),
    (["cooccurrence"], None,
     "Fargo (1996) is often liked by people whose likes overlap with yours."),
    (["popularity"], 412, "Fargo (1996) is one of the most liked titles: 412 people liked it."),
    (["popularity"], None, "Fargo (1996) is one of the most liked titles overall."),
    ([], None, "Fargo (1996) was picked for you from the catalog."),
])
def test_without_a_liked_item_the_retrieval_source_speaks(items, sources, popularity,
                                                          expected) -> None:
    evidence = Evidence(item_id="100", title=items["100"].title, year=1996,
                        genres=["Crime"], sources=sources, popularity=popularity)
    assert sentences(evidence)[0] == expected


def test_never_bare_metadata_and_always_naming_the_item() -> None:
    link = HistoryLink(item_id="h", title="Alien (1979)", nearest=True)
    evidence = Evidence(item_id="i", title="Aliens (1986)", year=1986, because=[link])
    for sentence in sentences(evidence):
        assert "Aliens (1986)" in sentence and "Genres:" not in sentence


def test_display_titles_put_the_article_first() -> None:
    assert display_title("Usual Suspects, The (1995)") == "The Usual Suspects (1995)"
    assert display_title("Comedy of Errors, A") == "A Comedy of Errors"
    assert display_title("Avventura, L' (1960)") == "L'Avventura (1960)"
    assert display_title("Heat (1995)") == "Heat (1995)"
