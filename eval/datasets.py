"""Rating logs plus catalogs: MovieLens 100K, MovieLens 1M (full or partial), your own files.

A data set is read whole and checked before any evaluation starts: every rated item
must be in the catalog, so a protocol never meets an id the store cannot show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from recagent.types import Item
from retrieval.catalog_files import load_catalog, load_movielens
from retrieval.interaction_files import read_csv, read_separated
from retrieval.interactions import InteractionRow

ML1M_PARTIAL_NOTE = (
    "ML-1M partial: ratings of users 1-2999 only (487,650 of 1,000,209); "
    "not comparable with full ML-1M figures."
)


@dataclass(frozen=True)
class Rating:
    """One logged interaction; `rating` is None for implicit feedback (a view, a click)."""

    user: str
    item: str
    rating: float | None
    ts: int


@dataclass(frozen=True)
class Dataset:
    """Interactions in file order, the catalog by id, and what a report must say about them."""

    name: str
    ratings: tuple[Rating, ...]
    items: dict[str, Item]
    partial: bool = False
    notes: tuple[str, ...] = field(default=())

    def by_user(self) -> dict[str, list[Rating]]:
        """Each user's interactions oldest first; equal timestamps keep file order."""
        users: dict[str, list[Rating]] = {}
        for r in self.ratings:
            users.setdefault(r.user, []).append(r)
        return {u: sorted(rs, key=lambda r: r.ts) for u, rs in users.items()}

    def rated_items(self) -> list[str]:
        """Items that anyone interacted with, sorted: the pool negatives are drawn from."""
        return sorted({r.item for r in self.ratings}, key=_natural)


def _natural(item_id: str) -> tuple[int, int | str]:
    return (0, int(item_id)) if item_id.isdigit() else (1, item_id)


def load_ml100k(folder: Path) -> Dataset:
    """MovieLens 100K: u.data (tab-separated) and u.item via the catalog loader."""
    items = _by_id(load_movielens(folder))
    ratings = _ratings(read_separated(folder / "u.data", "\t", known=items))
    return Dataset(name="ml-100k", ratings=ratings, items=items)


def load_ml1m(folder: Path, ratings_path: Path | None = None, *, partial: bool = False) -> Dataset:
    """MovieLens 1M: movies.dat from `folder`, ratings from `ratings_path` (default ratings.dat).

    `partial=True` marks a subset of users, so reports say the figures are not comparable."""
    items = _by_id(load_movielens(folder))
    path = ratings_path or folder / "ratings.dat"
    ratings = _ratings(read_separated(path, "::", known=items))
    notes = (ML1M_PARTIAL_NOTE,) if partial else ()
    name = "ml-1m-partial" if partial else "ml-1m"
    return Dataset(name=name, ratings=ratings, items=items, partial=partial, notes=notes)


def load_interactions(path: Path, catalog: Path, *, name: str = "interactions") -> Dataset:
    """A CSV with a header `user,item,rating,timestamp` (rating may be empty: implicit),
    plus a catalog file the recagent ingester reads (.jsonl, .csv or a MovieLens folder)."""
    items = _by_id(load_catalog(catalog))
    ratings = _ratings(read_csv(path, known=items, require_ts=True))
    return Dataset(name=name, ratings=ratings, items=items)


def _by_id(items: list[Item]) -> dict[str, Item]:
    return {i.id: i for i in items}


def _ratings(rows: Iterable[InteractionRow]) -> tuple[Rating, ...]:
    """The rows the one parser (retrieval.interaction_files) read, in file order; every
    row has a timestamp (the readers are asked to require one)."""
    return tuple(Rating(user=r.user, item=r.item, rating=r.rating, ts=cast(int, r.ts))
                 for r in rows)
