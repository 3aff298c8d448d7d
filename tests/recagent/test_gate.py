"""The one final gate (recagent.gate.assemble), directly: every rule, every typed repair."""

from __future__ import annotations

import pytest

from recagent.explain.checker import text_problem
from recagent.gate import assemble, no_limits, retrieval_reason
from recagent.types import Candidate, Item, RankedItem, Repair

TITLES = {"h": "Heat"}


def candidate(i: str, rank: int, *, year: int = 2000, nearest: str | None = "h") -> Candidate:
    item = Item(id=i, title=f"Movie {i}", text="", metadata={"year": year})
    return Candidate(item=item, rank=rank, score=1.0 - rank / 10, nearest_history_id=nearest)


CANDIDATES = [candidate("a", 0), candidate("b", 1, year=1950), candidate("c", 2),
              candidate("d", 3, nearest=None), candidate("e", 4)]


def before_1990(item: Item) -> list[str]:
    year = item.metadata.get("year")
    return [f"is from {year}"] if isinstance(year, int) and year < 1990 else []


def ids(items: list[RankedItem]) -> list[str]:
    return [i.item_id for i in items]


def kinds(repairs: list[Repair]) -> list[tuple[str, str | None, int]]:
    return [(r.kind, r.item_id, r.count) for r in repairs]


def test_a_clean_answer_passes_unchanged() -> None:
    items, repairs = assemble([("c", "because"), ("a", "also")], CANDIDATES, set(), 2, TITLES)
    assert ids(items) == ["c", "a"] and repairs == []
    assert [i.explanation for i in items] == ["because", "also"]
    assert all(i.source == "llm" for i in items)
    assert [i.score for i in items] == [1.0, 0.5]


def test_unknown_seen_duplicate_and_limit_breaking_picks_are_dropped_with_typed_repairs(
) -> None:
    order = [("zz", "r1"), ("a", "r2"), ("c", "r3"), ("a", "r4"), ("b", "r5"), ("e", "r6")]
    items, repairs = assemble(order, CANDIDATES, {"c"}, 3, TITLES, limits=before_1990)
    assert ids(items) == ["a", "e", "d"]
    assert kinds(repairs) == [("not_candidate", "zz", 1), ("seen", "c", 1),
                              ("duplicate", "a", 1), ("violates", "b", 1), ("filled", None, 1)]
    assert repairs[3].detail == "dropped 'Movie b': is from 1950"
    assert all(r.detail for r in repairs)


def test_the_top_up_follows_retrieval_order_and_skips_what_may_not_be_shown() -> None:
    items, repairs = assemble([("e", "best")], CANDIDATES, {"a"}, 4, TITLES,
                              limits=before_1990)
    assert ids(items) == ["e", "c", "d"]  # a seen, b too old: only three may be shown
    assert [i.source for i in items] == ["llm", "retrieval", "retrieval"]
    assert kinds(repairs) == [("violates", "b", 1), ("filled", None, 2)]


def test_k_is_respected_and_later_picks_are_not_even_looked_at() -> None:
    order = [("a", "1"), ("c", "2"), ("zz", "3"), ("b", "4")]
    items, repairs = assemble(order, CANDIDATES, set(), 2, TITLES, limits=before_1990)
    assert ids(items) == ["a", "c"] and repairs == []


@pytest.mark.parametrize("k", [1, 3, 5])
def test_without_an_order_the_list_is_retrieval_order_and_not_a_repair(k: int) -> None:
    items, repairs = assemble([], CANDIDATES, set(), k, TITLES)
    assert ids(items) == ["a", "b", "c", "d", "e"][:k] and repairs == []
    assert all(i.source == "retrieval" and i.explanation for i in items)


def test_empty_reasons_are_replaced_by_retrieval_evidence() -> None:
    items, repairs = assemble([("a", "   "), ("d", ""), ("c", None)], CANDIDATES, set(), 3,
                              TITLES)
    assert [i.explanation for i in items] == [
        "Close in content to Heat, which you liked.",
        "A close content match to your history.",
        "Close in content to Heat, which you liked."]
    assert [i.source for i in items] == ["retrieval", "retrieval", "llm"]  # None: not asked
    assert kinds(repairs) == [("empty_reason", "a", 1), ("empty_reason", "d", 1)]


def test_each_refused_item_is_one_repair_though_the_top_up_passes_it_again() -> None:
    items, repairs = assemble([("b", "old")], CANDIDATES, set(), 5, TITLES,
                              limits=before_1990)
    assert ids(items) == ["a", "c", "d", "e"]
    assert kinds(repairs) == [("violates", "b", 1), ("filled", None, 4)]


def test_the_defaults() -> None:
    assert no_limits(CANDIDATES[1].item) == []
    assert retrieval_reason(CANDIDATES[0], {}) == "A close content match to your history."


def movie(i: int) -> Item:
    return Item(id=str(i), title=f"Movie {i}", text=f"Movie {i} (199{i % 10})")


LISTWISE = [Candidate(item=movie(i), rank=n, score=1 - n / 10, nearest_history_id="100")
            for n, i in enumerate([11, 12, 13, 14, 15])]
LISTWISE_TITLES = {"100": "Movie 100"}


# --- the gate after a listwise answer -------------------------------------------------

def test_repair_drops_unknown_seen_and_duplicate_then_fills_in_retrieval_order() -> None:
    order = [("13", "a"), ("99", "b"), ("13", "c"), ("12", "d")]
    items, repairs = assemble(order, LISTWISE, seen={"12"}, k=4, history_titles=LISTWISE_TITLES)
    assert ids(items) == ["13", "11", "14", "15"]
    assert [i.source for i in items] == ["llm", "retrieval", "retrieval", "retrieval"]
    assert [(r.kind, r.item_id, r.count) for r in repairs] == [
        ("not_candidate", "99", 1), ("duplicate", "13", 1), ("seen", "12", 1),
        ("filled", None, 3)]
    assert all(r.detail for r in repairs)


def test_repair_never_returns_seen_candidates_even_when_filling() -> None:
    items, _ = assemble([], LISTWISE, seen={"11", "12"}, k=5, history_titles=LISTWISE_TITLES)
    assert ids(items) == ["13", "14", "15"]


def test_repair_explains_every_item_and_scores_descend() -> None:
    items, repairs = assemble([("14", "  "), ("15", "good")], LISTWISE, seen=set(), k=3,
                              history_titles=LISTWISE_TITLES)
    assert all(i.explanation.strip() for i in items)
    assert "Movie 100" in items[0].explanation  # retrieval evidence names the history item
    assert [(r.kind, r.item_id, r.count) for r in repairs] == [("empty_reason", "14", 1),
                                                               ("filled", None, 1)]
    assert [i.score for i in items] == sorted((i.score for i in items), reverse=True)


def test_a_clean_answer_needs_no_repair() -> None:
    items, repairs = assemble([("12", "x"), ("11", "y")], LISTWISE, set(), 2, LISTWISE_TITLES)
    assert ids(items) == ["12", "11"] and repairs == []


@pytest.mark.parametrize(("reason", "problem"), [
    ("", "empty"),
    ("   ", "empty"),
    ("A is the best candidate for this user.", "label_talk"),
    ("Pick [C]: it fits.", "label_talk"),
    ("Candidate B matches the history.", "label_talk"),
    ("a great film a great film a great film a great film", "looping"),
    ("Another heist film like Heat.", "repeated"),
    ("Another heist film like Heat, with a tense final shootout.", None),
    ("A tense crime thriller like Heat.", None),  # 'A' as an article is not a label
    ("The one item I would pick after Heat.", None),  # nor is the pronoun 'I'
])
def test_reasons_that_say_nothing_to_a_user_are_refused(reason: str, problem: str | None) -> None:
    assert text_problem(reason, ["another heist film like heat."]) == problem


def test_an_unusable_reason_is_replaced_by_retrieval_evidence() -> None:
    order = [("a", "A is the best candidate."), ("d", "Fits the tense mood.")]
    items, repairs = assemble(order, CANDIDATES, set(), 2, TITLES)
    assert ids(items) == ["a", "d"] and items[0].source == "retrieval"
    assert "Heat" in items[0].explanation and items[1].explanation == "Fits the tense mood."
    assert kinds(repairs) == [("unusable_reason", "a", 1)]


def twin_candidate(i: str, rank: int, title: str) -> Candidate:
    return Candidate(item=Item(id=i, title=title, text=""), rank=rank, score=1.0 - rank / 10)


def test_one_film_under_two_ids_is_seen_and_shown_once() -> None:
    """Probe case 10: MovieLens 100K lists Chasing Amy (1997) as 246 and 268; with 246
    liked, 268 was recommended, 'because you liked Chasing Amy (1997)'."""
    pool = [twin_candidate("268", 0, "Chasing Amy (1997)"),
            twin_candidate("1", 1, "Sabrina (1954)"), twin_candidate("2", 2, "Sabrina (1995)"),
            twin_candidate("3", 3, "Fly Away Home (1996)"),
            twin_candidate("4", 4, "Fly Away Home (1996)"),
            twin_candidate("5", 5, "Usual Suspects, The (1995)")]
    history = {"246": "Chasing Amy (1997)", "9": "The Usual Suspects (1995)"}
    items, repairs = assemble([("268", None), ("3", None), ("4", None)], pool, set(history), 4,
                              history)
    assert ids(items) == ["3", "1", "2"]  # remakes (other years) are other films
    assert kinds(repairs) == [("seen", "268", 1), ("duplicate", "4", 1), ("filled", None, 2)]
    assert "the same film" in repairs[0].detail
    items, _ = assemble([], pool, set(history), 6, history)  # the top-up skips twins too
    assert ids(items) == ["1", "2", "3"]
