"""Rating logs plus catalogs: MovieLens 100K, MovieLens 1M (full or partial), your own files.

A data set is read whole and checked before any evaluation starts: every rated item
must be in the catalog, so a protocol never meets an id the store cannot show.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recagent.errors import ConfigError, DataFormatError
from recagent.types import Item
from retrieval.catalog_files import load_catalog, load_movielens

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
    ratings = tuple(_read_separated(folder / "u.data", "\t", items))
    return Dataset(name="ml-100k", ratings=ratings, items=items)


def load_ml1m(folder: Path, ratings_path: Path | None = None, *, partial: bool = False) -> Dataset:
    """MovieLens 1M: movies.dat from `folder`, ratings from `ratings_path` (default ratings.dat).

    `partial=True` marks a subset of users, so reports say the figures are not comparable."""
    items = _by_id(load_movielens(folder))
    path = ratings_path or folder / "ratings.dat"
    ratings = tuple(_read_separated(path, "::", items))
    notes = (ML1M_PARTIAL_NOTE,) if partial else ()
    name = "ml-1m-partial" if partial else "ml-1m"
    return Dataset(name=name, ratings=ratings, items=items, partial=partial, notes=notes)


def load_interactions(path: Path, catalog: Path, *, name: str = "interactions") -> Dataset:
    """A CSV with a header `user,item,rating,timestamp` (rating may be empty: implicit),
    plus a catalog file the recagent ingester reads (.jsonl, .csv or a MovieLens folder)."""
    items = _by_id(load_catalog(catalog))
    return Dataset(name=name, ratings=tuple(_read_csv(path, items)), items=items)


def _by_id(items: list[Item]) -> dict[str, Item]:
    return {i.id: i for i in items}


def _read_separated(path: Path, sep: str, items: dict[str, Item]) -> Iterator[Rating]:
    """`user sep item sep rating sep timestamp` lines, as in u.data and ratings.dat."""
    if not path.is_file():
        raise ConfigError(f"ratings file {path} does not exist")
    with path.open(encoding="latin-1") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(sep)
            if len(fields) != 4:
                raise DataFormatError(str(path), line_no, f"expected 4 fields, got {len(fields)}")
            yield _rating(path, line_no, *fields, items=items)


def _read_csv(path: Path, items: dict[str, Item]) -> Iterator[Rating]:
    if not path.is_file():
        raise ConfigError(f"interactions file {path} does not exist")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"user", "item", "timestamp"} - set(reader.fieldnames or [])
        if missing:
            raise DataFormatError(str(path), 1, f"header lacks column(s) {sorted(missing)}")
        for row in reader:
            yield _rating(path, reader.line_num, row["user"], row["item"],
                          row.get("rating") or "", row["timestamp"], items=items)


def _rating(
    path: Path, line_no: int, user: str, item: str, rating: str, ts: str, *,
    items: dict[str, Item],
) -> Rating:
    user, item, rating, ts = user.strip(), item.strip(), rating.strip(), ts.strip()
    if not user or not item:
        raise DataFormatError(str(path), line_no, "empty user or item id")
    if item.isdigit():
        item = str(int(item))  # the catalog loaders normalise numeric ids the same way
    if item not in items:
        raise DataFormatError(str(path), line_no, f"item {item!r} is not in the catalog")
    try:
        value = float(rating) if rating else None
        stamp = int(ts)
    except ValueError:
        raise DataFormatError(
            str(path), line_no, f"rating {rating!r} or timestamp {ts!r} is not a number"
        ) from None
    return Rating(user=user, item=item, rating=value, ts=stamp)
