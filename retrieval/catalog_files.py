"""Catalog files → Items: MovieLens 100K/1M folders, JSON Lines and CSV.

Every loader parses the whole file before returning, so a bad row stops an ingestion
before anything is written; errors name the file and the line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from retrieval.attributes import LIST_SEP, encode_list
from retrieval.errors import ConfigError, DataFormatError
from retrieval.jsonl import json_objects
from retrieval.types import Item, MetadataValue

ML1M_GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
"""The fixed genre list of MovieLens 1M (its README); ML-100K ships its own in u.genre."""

_YEAR = re.compile(r"\((\d{4})\)")
_DATE_YEAR = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")
_TEXT_COLUMNS = ("id", "title", "text")
_INT = re.compile(r"^[+-]?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def load_catalog(path: Path) -> list[Item]:
    """Pick the loader by what `path` is: a MovieLens folder (or its item file), .jsonl, .csv."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"catalog {path} does not exist")
    if path.is_dir():
        return load_movielens(path)
    if path.name in ("u.item", "movies.dat"):
        return load_movielens(path.parent)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return load_jsonl(path)
    if suffix == ".csv":
        return load_csv(path)
    raise ConfigError(
        f"cannot tell the format of {path}: expected a MovieLens folder, .jsonl or .csv"
    )


# ---- MovieLens ---------------------------------------------------------------------------


def load_movielens(folder: Path) -> list[Item]:
    """ML-100K (u.item + u.genre) or ML-1M (movies.dat), whichever the folder holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"MovieLens folder {folder} does not exist or is not a folder")
    if (folder / "u.item").is_file():
        return _load_ml100k(folder)
    if (folder / "movies.dat").is_file():
        return _load_ml1m(folder / "movies.dat")
    raise ConfigError(
        f"{folder} is not a MovieLens folder: expected u.item (ML-100K) or movies.dat (ML-1M)"
    )


def _latin1_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines; MovieLens files are ISO-8859-1, not UTF-8."""
    with path.open(encoding="latin-1", newline="") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield line_no, line


def _ml100k_genres(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: ML-100K needs it for the genre names")
    genres: list[str] = []
    for line_no, line in _latin1_lines(path):
        name, sep, index = line.partition("|")
        if not sep or not name or index.strip() != str(len(genres)):
            raise DataFormatError(
                str(path), line_no, f"expected 'name|{len(genres)}', got {line!r}"
            )
        genres.append(name)
    if not genres:
        raise DataFormatError(str(path), 1, "no genres")
    return genres


def _load_ml100k(folder: Path) -> list[Item]:
    genres = _ml100k_genres(folder / "u.genre")
    path = folder / "u.item"
    n_fields = 5 + len(genres)
    items = _Collector(path)
    for line_no, line in _latin1_lines(path):
        fields = line.split("|")
        if len(fields) != n_fields:
            raise DataFormatError(
                str(path), line_no, f"expected {n_fields} '|'-separated fields, got {len(fields)}"
            )
        item_id, title, release = fields[0].strip(), fields[1].strip(), fields[2].strip()
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataFormatError(str(path), line_no, f"genre flags must be 0 or 1, got {flags}")
        chosen = [g for g, f in zip(genres, flags, strict=True) if f == "1"]
        year = _year_of(title)
        if year is None and (m := _DATE_YEAR.match(release)):
            year = int(m.group(1))
        items.add(line_no, _movie(item_id, title, year, chosen, genres))
    return items.done()


def _load_ml1m(path: Path) -> list[Item]:
    items = _Collector(path)
    known = set(ML1M_GENRES)
    for line_no, line in _latin1_lines(path):
        fields = line.split("::")
        if len(fields) != 3:
            raise DataFormatError(
                str(path), line_no, f"expected 'id::title::genres', got {len(fields)} fields"
            )
        item_id, title, genre_field = (f.strip() for f in fields)
        chosen = [g for g in genre_field.split("|") if g]
        unknown = [g for g in chosen if g not in known]
        if unknown:
            raise DataFormatError(str(path), line_no, f"unknown genre(s) {unknown}")
        items.add(line_no, _movie(item_id, title, _year_of(title), chosen, ML1M_GENRES))
    return items.done()


def _year_of(title: str) -> int | None:
    years = _YEAR.findall(title)
    return int(years[-1]) if years else None


def _movie(
    item_id: str, title: str, year: int | None, chosen: list[str], genres: Iterable[str]
) -> Item | str:
    """An Item, or the problem with the row as a string (the caller adds file and line)."""
    if not item_id.isdigit():
        return f"movie id must be a whole number, got {item_id!r}"
    if not title:
        return "empty title"
    spans = [m.span() for m in _YEAR.finditer(title)]
    bare = title[: spans[-1][0]] + title[spans[-1][1] :] if spans else title
    bare = re.sub(r"\s+", " ", bare).strip() or title
    metadata: dict[str, MetadataValue] = {"title": bare, "genres": "|".join(chosen)}
    if year is not None:
        metadata["year"] = year
    for g in genres:
        metadata[f"genre_{g}"] = g in chosen
    text = f"{title}. Genres: {', '.join(chosen) or 'unknown'}."
    return Item(id=str(int(item_id)), title=title, text=text, metadata=metadata)


# ---- generic files -----------------------------------------------------------------------


def load_jsonl(path: Path) -> list[Item]:
    """One JSON object per line: id and title required, text optional (any length), the
    rest metadata; a list of scalars (genres, director, star, ...) is stored as one list
    attribute (see retrieval/attributes.py) and, without a text, written into it."""
    path = _existing_file(path)
    items = _Collector(path)
    for line_no, record in json_objects(path):
        items.add(line_no, _record_item(record, typed=True))
    return items.done()


def load_csv(path: Path) -> list[Item]:
    """A header row with id and title (text optional); other columns become metadata.

    Cells are typed as int, float or bool when they read exactly as one ("1995", "7.5",
    "true"), so metadata filters like {"year": {"$gte": 1990}} work; empty cells are left out.
    """
    path = _existing_file(path)
    data = path.read_bytes()
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_no = data[: e.start].count(b"\n") + 1
        raise DataFormatError(str(path), line_no, f"not valid UTF-8: {e.reason}") from None
    # The csv module refuses cells over 131,072 characters by default; a cell can be as long
    # as the file, as in JSONL. The limit is process-wide, so it is restored afterwards.
    limit = csv.field_size_limit(max(csv.field_size_limit(), len(content)))
    try:
        return _read_csv(path, content)
    finally:
        csv.field_size_limit(limit)


def _read_csv(path: Path, content: str) -> list[Item]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataFormatError(str(path), 1, "empty file: expected a header row") from None
    except csv.Error as e:
        raise DataFormatError(str(path), reader.line_num, f"bad CSV: {e}") from None
    header = [h.strip() for h in header]
    missing = [c for c in ("id", "title") if c not in header]
    if missing:
        raise DataFormatError(str(path), 1, f"header lacks column(s) {missing}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes or "" in header:
        raise DataFormatError(str(path), 1, f"empty or repeated column names: {dupes or ['']}")
    items = _Collector(path)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataFormatError(str(path), reader.line_num, f"bad CSV: {e}") from None
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(
                str(path), reader.line_num, f"expected {len(header)} cells, got {len(row)}"
            )
        record = {
            k: v.strip() if k in _TEXT_COLUMNS else _cell(v)
            for k, v in zip(header, row, strict=True)
            if v.strip()
        }
        items.add(reader.line_num, _record_item(record, typed=False))
    return items.done()


def _existing_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"catalog file {path} does not exist")
    return path


def _cell(value: str) -> Any:
    v = value.strip()
    if _INT.match(v):
        return int(v)
    if _FLOAT.match(v):
        return float(v)
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _record_item(record: dict[str, Any], *, typed: bool) -> Item | str:
    """An Item from one record, or the problem as a string."""
    item_id, title, text = record.get("id"), record.get("title"), record.get("text")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int) or str(item_id) == "":
        return f"'id' must be a non-empty string or integer, got {item_id!r}"
    if not isinstance(title, str | int | float) or isinstance(title, bool) or not str(title):
        return f"'title' must be a non-empty string, got {title!r}"
    title = str(title).strip()
    if text is not None and not isinstance(text, str):
        if typed:
            return f"'text' must be a string, got {text!r}"
        text = str(text)
    metadata: dict[str, MetadataValue] = {}
    for key, value in record.items():
        if key in ("id", "title", "text") or value is None:
            continue
        if isinstance(value, list) and all(_is_scalar(v) for v in value):
            joined = encode_list(value)
            if joined is None:
                return (f"field {key!r}: a list element may not contain {LIST_SEP!r} "
                        "(lists are stored joined by it)")
            value = joined
        if not _is_scalar(value):
            return f"field {key!r} must be a string, number, boolean or list of those"
        metadata[key] = value
    if not text or not text.strip():
        text = _default_text(title, metadata)
    try:
        return Item(id=str(item_id).strip(), title=title, text=text, metadata=metadata)
    except ValidationError as e:
        return "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _default_text(title: str, metadata: dict[str, MetadataValue]) -> str:
    """Title plus the descriptive metadata, e.g. "Dune. Genres: Sci-Fi, Drama. Year: 1965."."""
    parts = [title]
    for key, value in metadata.items():
        if isinstance(value, bool) or value == "":
            continue  # flags read badly as prose; the genre list already says it
        shown = ", ".join(str(value).split("|")) if isinstance(value, str) else str(value)
        parts.append(f"{key.replace('_', ' ').capitalize()}: {shown}")
    return ". ".join(parts) + "."


class _Collector:
    """Gathers items of one file, turning row problems and duplicate ids into errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[Item] = []
        self.lines: dict[str, int] = {}

    def add(self, line_no: int, result: Item | str) -> None:
        if isinstance(result, str):
            raise DataFormatError(str(self.path), line_no, result)
        first = self.lines.get(result.id)
        if first is not None:
            raise DataFormatError(
                str(self.path), line_no, f"duplicate id {result.id!r} (first on line {first})"
            )
        self.lines[result.id] = line_no
        self.items.append(result)

    def done(self) -> list[Item]:
        if not self.items:
            raise ConfigError(f"{self.path} holds no items")
        return self.items
