"""Merging profile updates, the Chroma filter they give, and the final per-item gate."""

from __future__ import annotations

from collections.abc import Collection

from recagent.chat.profile import MAX_ITEMS, describe, merge, violations, where_filter
from recagent.types import Item, ItemRef, PreferenceProfile, ProfileDelta


def ref(item_id: str) -> ItemRef:
    return ItemRef(item_id=item_id, title=f"Movie {item_id}", said=item_id)


def movie(item_id: str, year: int | None, *genres: str) -> Item:
    metadata: dict[str, str | int | float | bool] = {
        f"genre_{g}": g in genres for g in ("Horror", "Comedy", "Drama")}
    if year is not None:
        metadata["year"] = year
    return Item(id=item_id, title=f"Movie {item_id}", text="", metadata=metadata)


EMPTY = PreferenceProfile()


def test_the_newest_statement_about_an_item_wins() -> None:
    p = merge(EMPTY, ProfileDelta(), liked=[ref("1"), ref("2")])
    p = merge(p, ProfileDelta(), disliked=[ref("1")])
    assert [r.item_id for r in p.liked] == ["2"] and [r.item_id for r in p.disliked] == ["1"]
    p = merge(p, ProfileDelta(), liked=[ref("1")], seen=[ref("2")])
    assert [r.item_id for r in p.liked] == ["2", "1"] and p.disliked == []
    assert [r.item_id for r in p.seen] == ["2"]
    assert p.excluded_ids == {"1", "2"}


def test_lists_are_bounded_and_free_of_repeats() -> None:
    p = EMPTY
    for n in range(MAX_ITEMS + 5):
        p = merge(p, ProfileDelta(), seen=[ref(str(n)), ref(str(n))])
    assert len(p.seen) == MAX_ITEMS
    assert p.seen[-1].item_id == str(MAX_ITEMS + 4) and p.seen[0].item_id == "5"


def test_genres_include_exclude_and_allow() -> None:
    p = merge(EMPTY, ProfileDelta(include_genres=["Comedy"], exclude_genres=["Horror"]))
    assert (p.include_genres, p.exclude_genres) == (["Comedy"], ["Horror"])
    p = merge(p, ProfileDelta(exclude_genres=["Comedy"]))
    assert (p.include_genres, p.exclude_genres) == ([], ["Horror", "Comedy"])
    p = merge(p, ProfileDelta(allow_genres=["Horror"]))
    assert (p.include_genres, p.exclude_genres) == ([], ["Comedy"])
    # one message that both asks for and rules out a genre: ruling out wins
    p = merge(EMPTY, ProfileDelta(include_genres=["Drama"], exclude_genres=["Drama"]))
    assert (p.include_genres, p.exclude_genres) == ([], ["Drama"])


def test_years_replace_and_never_contradict() -> None:
    p = merge(EMPTY, ProfileDelta(year_max=1989))
    p = merge(p, ProfileDelta(year_min=2001))  # "after 2000" after "before 1990"
    assert (p.year_min, p.year_max) == (2001, None)
    p = merge(p, ProfileDelta(year_max=2010))
    assert (p.year_min, p.year_max) == (2001, 2010)
    p = merge(p, ProfileDelta(clear_years=True))
    assert (p.year_min, p.year_max) == (None, None)
    p = merge(p, ProfileDelta(year_min=1999, year_max=1990))
    assert (p.year_min, p.year_max) == (1990, 1999)


def test_wishes_accumulate_up_to_a_bound() -> None:
    p = EMPTY
    for n in range(8):
        p = merge(p, ProfileDelta(wishes=[f"wish {n}", " "]))
    assert p.wishes == [f"wish {n}" for n in range(3, 8)]


def test_where_filter_shapes() -> None:
    assert where_filter(EMPTY) is None
    assert where_filter(PreferenceProfile(exclude_genres=["Horror"])) == {"genre_Horror": False}
    both = PreferenceProfile(include_genres=["Comedy", "Drama"], exclude_genres=["Horror"],
                             year_min=1990, year_max=1999)
    assert where_filter(both) == {"$and": [
        {"genre_Horror": False},
        {"$or": [{"genre_Comedy": True}, {"genre_Drama": True}]},
        {"year": {"$gte": 1990}},
        {"year": {"$lte": 1999}},
    ]}


def test_violations_name_every_broken_limit() -> None:
    p = PreferenceProfile(exclude_genres=["Horror"], include_genres=["Comedy"], year_min=1990,
                          seen=[ref("9")])
    assert violations(movie("1", 1995, "Comedy"), p) == []
    assert violations(movie("2", 1995, "Comedy", "Horror"), p) == ["has the ruled-out genre Horror"]
    assert violations(movie("3", 1980, "Comedy"), p) == ["is from 1980, before 1990"]
    assert violations(movie("4", None, "Comedy"), p) == ["has no known year"]
    assert violations(movie("5", 1995, "Drama"), p) == ["has none of Comedy"]
    assert violations(movie("9", 1995, "Comedy"), p) == ["already named by the user"]


def test_a_genre_the_item_does_not_declare_counts_as_present() -> None:
    bare = Item(id="1", title="T", text="", metadata={"year": 2000})
    assert violations(bare, PreferenceProfile(exclude_genres=["Horror"]))
    listed = Item(id="1", title="T", text="", metadata={"genres": "Comedy|Drama"})
    assert violations(listed, PreferenceProfile(include_genres=["Drama"])) == []


def test_describe_lists_the_limits() -> None:
    p = PreferenceProfile(exclude_genres=["Horror"], year_min=1990, seen=[ref("1")])
    assert describe(p) == ["no Horror", "from 1990 on", "1 seen"]
    assert describe(PreferenceProfile(year_min=1980, year_max=1989)) == ["1980\u20131989"]


def test_the_final_gate_drops_what_breaks_the_profile_and_tops_up() -> None:
    from functools import partial

    from recagent.gate import assemble
    from recagent.types import Candidate

    candidates = [Candidate(item=movie(i, y, *g), rank=n, score=1.0)
                  for n, (i, y, g) in enumerate([("1", 1995, ("Horror",)), ("2", 1995, ()),
                                                 ("3", 1980, ()), ("4", 1999, ())])]
    proposed = [(i, "x") for i in ("1", "99", "3", "2", "2")]
    p = PreferenceProfile(exclude_genres=["Horror"], year_min=1990)
    kept, repairs = assemble(proposed, candidates, set(), 3, {},
                             limits=partial(violations, profile=p))
    assert [i.item_id for i in kept] == ["2", "4"]  # only two candidates fit at all
    assert kept[1].source == "retrieval" and kept[1].explanation
    assert [(r.kind, r.item_id) for r in repairs] == [
        ("violates", "1"), ("not_candidate", "99"), ("violates", "3"), ("duplicate", "2"),
        ("filled", None)]  # each refused item once, though the top-up passes it again
    assert [r.detail for r in repairs if r.kind == "violates"] == [
        "dropped 'Movie 1': has the ruled-out genre Horror",
        "dropped 'Movie 3': is from 1980, before 1990"]


class LeakyStore:
    """A catalog whose search ignores the `where` filter: the gate must still hold."""

    def __init__(self, items: list[Item]) -> None:
        self.items = {i.id: i for i in items}
        self.embedder = self

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in texts]

    def count(self) -> int:
        return len(self.items)

    def get(self, ids: list[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in ids if i in self.items}

    def vectors(self, ids: list[str]) -> dict[str, object]:
        import numpy as np

        return {i: np.asarray([1.0, float(n)], dtype=np.float32)
                for n, i in enumerate(ids) if i in self.items}

    def query(self, vector: object, n: int, *, exclude: Collection[str] = (),
              where: object = None) -> list[tuple[Item, float, object]]:
        import numpy as np

        hits = [i for i in self.items.values() if i.id not in exclude][:n]
        return [(i, 1.0 - k / 10, np.asarray([1.0, 0.0], dtype=np.float32))
                for k, i in enumerate(hits)]


def test_a_leaky_retrieval_cannot_break_the_profile_and_the_chat_is_told() -> None:
    from typing import Any, cast

    from recagent.chat.profile_recommend import ProfileRecommender
    from recagent.recommender import Recommender

    store = LeakyStore([movie("h", 1995, "Horror"), movie("1", 1995), movie("2", 1990),
                        movie("old", 1950), movie("3", 1999)])
    engine = ProfileRecommender(Recommender(cast(Any, store), cast(Any, None), None,
                                            n_candidates=5))
    result = engine.recommend(PreferenceProfile(exclude_genres=["Horror"], year_min=1960), 3)
    assert [i.item_id for i in result.items] == ["1", "2", "3"]
    assert all(i.source == "retrieval" and i.explanation for i in result.items)
    assert result.notes == ["dropped 'Movie h': has the ruled-out genre Horror",
                            "dropped 'Movie old': is from 1950, before 1960"]


def test_one_update_that_likes_and_dislikes_a_title_dislikes_it() -> None:
    """Seen on ReDial (dialogue 20841: "... similar to it. Borat (2006) i didn't like it"):
    both readings of one message once put a title in liked and disliked, and the next list
    failed on a history naming it twice."""
    p = merge(PreferenceProfile(liked=[ref("1")]), ProfileDelta(),
              liked=[ref("2"), ref("3")], disliked=[ref("2")])
    assert [r.item_id for r in p.liked] == ["1", "3"]
    assert [r.item_id for r in p.disliked] == ["2"]
    again = merge(p, ProfileDelta(), liked=[ref("2")], disliked=[ref("2")])
    assert not {r.item_id for r in again.liked} & {r.item_id for r in again.disliked}
