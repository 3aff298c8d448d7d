"""A few MovieLens-shaped items (every `genre_<Name>` key, a year) for the explain tests."""

from __future__ import annotations

import pytest

from recagent.types import Item

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]
"""ML-100K's u.genre."""

MOVIES = {
    "50": ("Star Wars (1977)", ["Action", "Adventure", "Romance", "Sci-Fi", "War"]),
    "181": ("Return of the Jedi (1983)", ["Action", "Adventure", "Romance", "Sci-Fi", "War"]),
    "12": ("Usual Suspects, The (1995)", ["Crime", "Thriller"]),
    "1": ("Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    "71": ("Lion King, The (1994)", ["Animation", "Children's", "Musical"]),
    "7": ("Heat (1995)", ["Action", "Crime", "Thriller"]),
    "8": ("Kids (1995)", ["Drama"]),
    "228": ("Star Trek: The Wrath of Khan (1982)", ["Action", "Adventure", "Sci-Fi"]),
    "89": ("Blade Runner (1982)", ["Film-Noir", "Sci-Fi"]),
    "100": ("Fargo (1996)", ["Crime", "Drama", "Thriller"]),
    "9": ("War Room, The (1993)", ["Documentary"]),
}


def movie(item_id: str) -> Item:
    title, genres = MOVIES[item_id]
    metadata: dict[str, str | int | float | bool] = {
        "title": title.rsplit(" (", 1)[0], "genres": "|".join(genres),
        "year": int(title[-5:-1])}
    metadata.update({f"genre_{g}": g in genres for g in GENRES})
    return Item(id=item_id, title=title, text=f"{title}. Genres: {', '.join(genres)}.",
                metadata=metadata)


@pytest.fixture
def items() -> dict[str, Item]:
    return {i: movie(i) for i in MOVIES}


@pytest.fixture
def genres() -> list[str]:
    return list(GENRES)


@pytest.fixture
def titles() -> list[str]:
    return [title for title, _ in MOVIES.values()]
