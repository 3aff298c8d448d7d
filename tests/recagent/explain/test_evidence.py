"""Evidence: which liked items brought an item, how strongly, what they share, who found it."""

from __future__ import annotations

import pytest

from recagent.explain.evidence import CoLikes, gather, genre_vocabulary, item_genres, item_year
from recagent.types import Candidate, Interaction, Item


def candidate(item: Item, nearest: str | None = None, **sources: float) -> Candidate:
    return Candidate(item=item, rank=0, score=1.0, scores_by_source=sources or {"semantic": 1.0},
                     nearest_history_id=nearest)


def liked(*items: Item) -> list[tuple[Interaction, Item]]:
    return [(Interaction(item_id=i.id, liked=True, ts=n), i) for n, i in enumerate(items)]


def pairs() -> list[tuple[str, str]]:
    """Ten people liked Star Wars; 6 of them (and 2 others) Return of the Jedi; 3 of them
    and 2 others Fargo. User 'me' liked Star Wars and Jedi too (left out of the counts)."""
    out = [(f"u{n}", "50") for n in range(10)]
    out += [(f"u{n}", "181") for n in range(6)] + [("x1", "181"), ("x2", "181")]
    out += [(f"u{n}", "100") for n in range(3)] + [("x3", "100"), ("x4", "100")]
    return [*out, ("me", "50"), ("me", "181"), ("u0", "50")]  # a repeated pair counts once


def test_metadata_readers(items: dict[str, Item]) -> None:
    assert item_genres(items["12"]) == ["Crime", "Thriller"]  # 'unknown' is never a genre
    assert item_year(items["12"]) == 1995
    bare = Item(id="x", title="Film (1968)", text="", metadata={"genres": "Drama|unknown"})
    assert item_genres(bare) == ["Drama"] and item_year(bare) == 1968
    assert item_year(Item(id="y", title="No year", text="")) is None
    vocabulary = genre_vocabulary([items["8"]])  # one MovieLens item names them all
    assert "Western" in vocabulary and "unknown" not in vocabulary


def test_shares_count_people_who_liked_both_and_leave_the_user_out() -> None:
    stats = CoLikes(pairs())
    table = stats.table(["50", "zz"], ["181", "100", "nope"], exclude_user="me")
    assert table.support.tolist() == [10, 0]
    assert table.co_liked.tolist() == [[6, 3, 0], [0, 0, 0]]
    assert table.popularity.tolist() == [8, 5, 0]
    assert table.users == 14  # u0-u9, x1-x4
    with_me = stats.table(["50"], ["181"])
    assert with_me.support.tolist() == [11] and with_me.co_liked.tolist() == [[7]]


def test_evidence_cites_the_liked_items_that_brought_it(items: dict[str, Item]) -> None:
    history = [*liked(items["50"], items["12"]),
               (Interaction(item_id="7", rating=1), items["7"])]  # Heat: disliked
    chosen = [candidate(items["181"], "50", semantic=0.9, rrf=0.1, cooccurrence=2.0),
              candidate(items["100"], None, popularity=30.0)]
    jedi, fargo = gather(chosen, history, stats=CoLikes(pairs()), user_id="me")
    assert jedi.item_id == "181" and jedi.year == 1983 and jedi.sources == ["semantic",
                                                                              "cooccurrence"]
    assert jedi.popularity == 8
    star_wars = jedi.because[0]
    assert (star_wars.item_id, star_wars.nearest) == ("50", True)
    assert (star_wars.co_liked, star_wars.support, star_wars.strength) == (6, 10, 0.6)
    assert star_wars.shared_genres == ["Action", "Adventure", "Romance", "Sci-Fi", "War"]
    assert not star_wars.same_decade
    assert [link.item_id for link in jedi.because] == ["50"]  # Suspects shares nothing
    # Fargo: Suspects shares Crime and Thriller and the decade; a disliked Heat is never
    # cited, nor Star Wars: 3 of its 10 fans liked Fargo, less than 5 of everyone's 14
    assert [link.item_id for link in fargo.because] == ["12"]
    suspects = fargo.because[0]
    assert suspects.shared_genres == ["Crime", "Thriller"] and suspects.same_decade
    assert suspects.strength is None and suspects.support == 0  # nobody in the statistics
    assert fargo.sources == ["popularity"] and fargo.popularity == 5


def test_without_statistics_there_are_no_shares(items: dict[str, Item]) -> None:
    (jedi,) = gather([candidate(items["181"], "50")], liked(items["50"]))
    assert jedi.popularity is None
    assert jedi.because[0].strength is None and jedi.because[0].co_liked is None


def test_little_support_is_not_quoted(items: dict[str, Item]) -> None:
    few = [("a", "50"), ("b", "50"), ("a", "181"), ("b", "181")]
    (jedi,) = gather([candidate(items["181"], "50")], liked(items["50"]), stats=CoLikes(few))
    assert jedi.because[0].co_liked == 2 and jedi.because[0].strength is None


@pytest.mark.parametrize("max_links", [1, 2])
def test_the_nearest_item_comes_first_then_the_strongest(items: dict[str, Item],
                                                         max_links: int) -> None:
    history = liked(items["228"], items["50"], items["89"])
    (jedi,) = gather([candidate(items["181"], "89")], history, stats=CoLikes(pairs()),
                     max_links=max_links)
    assert [link.item_id for link in jedi.because] == ["89", "50"][:max_links]


def test_neutral_and_empty_histories_cite_nothing(items: dict[str, Item]) -> None:
    neutral = [(Interaction(item_id="50", rating=3), items["50"])]
    (jedi,) = gather([candidate(items["181"], None)], neutral)
    assert jedi.because == [] and jedi.genres
    assert gather([], neutral) == []
