"""Title lookup (recagent/chat/lookup.py) on a real embedded Chroma: list references, ids,
titles with articles, years, aliases and typos, and nothing for words that only sound near."""

from __future__ import annotations

import pytest

from recagent.chat.lookup import TitleResolver, catalog_genres, normalise_title
from recagent.types import Item, ItemRef, ShownItem
from retrieval.embeddings import Embedder
from retrieval.store import CatalogStore

CATALOG = [
    ("1", "Usual Suspects, The (1995)", "Crime"),
    ("2", "Seven (Se7en) (1995)", "Thriller"),
    ("3", "Terminator 2: Judgment Day (1991)", "Action"),
    ("4", "Alien (1979)", "Horror"),
    ("5", "Heat (1995)", "Crime"),
    ("6", "Sense and Sensibility (1995)", "Drama"),
    ("7", "Alien (2001)", "Comedy"),
]


@pytest.fixture(scope="module")
def resolver(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> TitleResolver:
    store = CatalogStore.open(embedder, path=tmp_path_factory.mktemp("lookup"), name="films")
    store.ingest([Item(id=i, title=t, text=f"{t}. A {g.lower()} film.",
                       metadata={"year": int(t[-5:-1]), f"genre_{g}": True})
                  for i, t, g in CATALOG])
    return TitleResolver(store)


def test_normalise_title_moves_articles_and_drops_the_year() -> None:
    assert normalise_title("Usual Suspects, The (1995)") == "usual suspects"
    assert normalise_title("the usual suspects") == "usual suspects"
    assert normalise_title("2001") == "2001"  # a year alone is a title too
    assert normalise_title("Enfer, L' (1994)") == normalise_title("L'Enfer") == "l enfer"
    # MovieLens's video marker after the year goes with it
    assert normalise_title("Land Before Time III (1995) (V)") == "land before time iii"


@pytest.mark.parametrize(("said", "expected"), [
    ("the usual suspects", "1"),
    ("Se7en", "2"),                  # a bracketed alias
    ("terminator 2", "3"),           # the start of a longer title
    ("Alien (2001)", "7"),           # the year picks among equal titles
    ("the usual suspect", "1"),      # a typo
])
def test_titles_are_found(resolver: TitleResolver, said: str, expected: str) -> None:
    ref = resolver.lookup(said)
    assert ref is not None and ref.item_id == expected and ref.how == "title"
    assert ref.said == said


def test_near_words_that_name_no_title_find_nothing(resolver: TitleResolver) -> None:
    assert resolver.lookup("a crime film from the 90s") is None
    assert resolver.lookup("") is None


def test_list_positions_pronouns_and_ids(resolver: TitleResolver) -> None:
    shown = [ShownItem(item_id="5", title="Heat (1995)"),
             ShownItem(item_id="4", title="Alien (1979)")]
    second = resolver.lookup("the second one", shown=shown)
    assert second is not None and (second.item_id, second.how) == ("4", "list")
    last = ItemRef(item_id="1", title="Usual Suspects, The (1995)", said="x")
    that = resolver.lookup("that one", shown=shown, last_ref=last)
    assert that is not None and that.item_id == "1"
    assert resolver.lookup("that one") is None  # nothing shown, nothing named yet
    by_id = resolver.lookup("6", allow_ids=True)
    assert by_id is not None and (by_id.item_id, by_id.how) == ("6", "id")


def test_a_phrase_is_tried_whole_before_it_is_split(resolver: TitleResolver) -> None:
    found, missing = resolver.resolve("Sense and Sensibility")
    assert [r.item_id for r in found] == ["6"] and missing == []
    found, missing = resolver.resolve("Heat and Nonexistent Film")
    assert [r.item_id for r in found] == ["5"] and missing == ["Nonexistent Film"]


def test_catalog_genres_come_from_the_catalog(resolver: TitleResolver) -> None:
    assert catalog_genres(resolver.store) == ["Action", "Comedy", "Crime", "Drama", "Horror",
                                              "Thriller"]
