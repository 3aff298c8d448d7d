"""The rule-based reading of chat messages: genres, years, mentions and list references."""

from __future__ import annotations

import pytest

from recagent.chat.parse import genre_words, is_pronoun, list_position, parse_message, wish_words

GENRES = ["Action", "Animation", "Children's", "Comedy", "Crime", "Horror", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]


def parse(text: str, genres: list[str] = GENRES):  # type: ignore[no-untyped-def]
    return parse_message(text, genres).delta


@pytest.mark.parametrize(("text", "include", "exclude"), [
    ("no horror", [], ["Horror"]),
    ("something tense but not horror", [], ["Horror"]),
    ("no horror or thriller please", [], ["Horror", "Thriller"]),
    ("I want a comedy, no romance", ["Comedy"], ["Romance"]),
    ("something funny", ["Comedy"], []),
    ("science fiction with some action", ["Sci-Fi", "Action"], []),
    ("I like sci-fi movies", ["Sci-Fi"], []),
    ("I don't like westerns", [], ["Western"]),
    ("I've seen enough westerns", [], ["Western"]),
    ("nothing scary, the kids are watching", ["Children's"], ["Horror"]),
    ("Star Wars-style adventure", [], []),  # 'war' is no genre here, 'Wars' is a title word
    ("recommend Star Wars", [], []),
    ("a war movie", ["War"], []),
])
def test_genre_words_of_the_catalog(text: str, include: list[str], exclude: list[str]) -> None:
    delta = parse(text)
    assert delta.include_genres == include
    assert delta.exclude_genres == exclude


def test_only_the_catalogs_own_genres_are_recognised() -> None:
    assert parse("no comedy, no horror", ["Horror"]).exclude_genres == ["Horror"]
    assert parse("no horror", []).exclude_genres == []
    assert genre_words(["Film-Noir"])["film noir"] == "Film-Noir"


def test_a_genre_can_be_allowed_again_without_being_required() -> None:
    delta = parse("horror is fine again")
    assert delta.allow_genres == ["Horror"]
    assert delta.include_genres == [] and delta.exclude_genres == []


@pytest.mark.parametrize(("text", "year_min", "year_max"), [
    ("nothing before 1990", 1990, None),
    ("Nothing released before 1990, please", 1990, None),
    ("I don't want anything before 1990", 1990, None),
    ("no movies older than 1985", 1985, None),
    ("after 2000", 2001, None),
    ("since 1995", 1995, None),
    ("1990 or later", 1990, None),
    ("from the 90s on", 1990, None),
    ("before 1980", None, 1979),
    ("nothing after 2000", None, 2000),
    ("up to 1999", None, 1999),
    ("80s movies", 1980, 1989),
    ("something from the 1970s", 1970, 1979),
    ("between 1980 and 1995", 1980, 1995),
    ("1985-1990", 1985, 1990),
    ("nothing from the 80s", None, None),  # a hole in the middle is not a limit we keep
    ("I loved Alien (1979)", None, None),  # a year in a title is no limit
])
def test_years(text: str, year_min: int | None, year_max: int | None) -> None:
    delta = parse(text)
    assert (delta.year_min, delta.year_max) == (year_min, year_max)


def test_any_year_clears_the_limits() -> None:
    assert parse("any year is fine").clear_years
    assert not parse("nothing before 1990").clear_years


def test_mentions_keep_their_polarity() -> None:
    delta = parse("I loved Alien and Heat, something tense but not horror")
    assert delta.liked == ["Alien and Heat"]  # split later, after a whole-title lookup
    assert delta.exclude_genres == ["Horror"]
    assert delta.wishes == ["tense"]
    delta = parse("I hated Titanic and I've seen Star Wars")
    assert delta.disliked == ["Titanic"] and delta.seen == ["Star Wars"] and delta.liked == []
    delta = parse("something like Sense and Sensibility")
    assert delta.liked == ["Sense and Sensibility"]
    assert parse("I've already watched Fargo too").seen == ["Fargo"]
    assert parse("I didn't like the first one").disliked == ["the first one"]
    assert parse("more like the second one").liked == ["the second one"]
    assert parse("I like movies like Heat").liked == ["Heat"]
    # ReDial's commonest opening (dialogue 20001): once read as a free-text wish, so the
    # named film itself topped the list
    assert parse("Hi I am looking for a movie like Super Troopers (2001)").liked == [
        "Super Troopers (2001)"]
    assert parse("any film like Heat?").liked == ["Heat"]


def test_not_having_seen_something_is_not_seen() -> None:
    for text in ("I haven't seen Fargo", "I have not seen Fargo", "never seen Fargo"):
        assert parse(text).seen == []


def test_the_residue_becomes_a_wish_without_filler_or_constraints() -> None:
    assert parse("nothing before 1990").wishes == []
    assert parse("I've seen that one").wishes == []
    assert parse("something slow and moody").wishes == ["slow moody"]
    assert wish_words("Please show me a movie") == ""


@pytest.mark.parametrize(("mention", "position"), [
    ("the second one", 2), ("second", 2), ("#3", 3), ("number 4", 4), ("2nd", 2),
    ("the last one", 5), ("the top one", 1), ("the 1st pick", 1), ("1", 1),
    ("the sixth one", None), ("#0", None), ("Alien", None), ("the second coming", None),
])
def test_list_positions(mention: str, position: int | None) -> None:
    assert list_position(mention, 5) == position


def test_no_list_no_position_and_pronouns() -> None:
    assert list_position("the first one", 0) is None
    assert all(is_pronoun(p) for p in ("it", "that one", "This one", "that movie"))
    assert not is_pronoun("it follows")


def test_a_catalog_without_genres_reads_messages_without_genre_limits() -> None:
    # An empty genre vocabulary used to make an empty pattern that matched everywhere.
    parsed = parse_message("I loved Heat, no horror please", [])
    assert parsed.delta.exclude_genres == [] and parsed.delta.include_genres == []
