"""Interaction files → InteractionRows: MovieLens u.data and ratings.dat, CSV and JSON Lines.

The one parser of interaction logs: `recagent ingest` stores what it reads, and eval's
data sets (eval/datasets.py) are built from it. Errors name the file and the line.

- MovieLens 100K `u.data` (and its `uN.base`/`uN.test` splits): `user<TAB>item<TAB>rating
  <TAB>timestamp`; MovieLens 1M `ratings.dat`: the same fields separated by `::`. Latin-1.
- CSV: a header row with `user` and `item`, and optionally `rating`, `liked` and
  `timestamp`; an empty cell is "not given". JSON Lines: one object per line with those
  keys (other keys are ignored). UTF-8. A row with neither a rating nor a like is a bare
  interaction (a view, a purchase): implicit positive feedback.

Given the catalog's ids (`known`), a row naming another item is refused. A numeric item id
is matched as written, else as a number ("007" finds item "7"), the way the MovieLens
catalog loader writes ids; without `known`, numeric ids are written as numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

from retrieval.errors import ConfigError, DataFormatError
from retrieval.interactions import InteractionRow
from retrieval.jsonl import json_objects

ML_SEPARATORS = {".data": "\t", ".base": "\t", ".test": "\t", ".dat": "::"}
"""MovieLens ratings files by suffix: 100K's u.data and splits, 1M's ratings.dat."""
RATINGS_FILES = ("u.data", "ratings.dat")
"""A MovieLens folder's ratings file: 100K's, then 1M's."""
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def ratings_file(folder: Path) -> Path | None:
    """The ratings file of a MovieLens folder (u.data or ratings.dat), None without one."""
    for name in RATINGS_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_interactions(
    path: Path, *, known: Container[str] | None = None, require_ts: bool = False
) -> list[InteractionRow]:
    """The whole file, its format told by its name: .jsonl/.ndjson, .csv, or a MovieLens
    ratings file (u.data, uN.base/.test, ratings.dat or another .dat)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return list(read_jsonl(path, known=known, require_ts=require_ts))
    if suffix == ".csv":
        return list(read_csv(path, known=known, require_ts=require_ts))
    if suffix in ML_SEPARATORS:
        return list(read_separated(path, ML_SEPARATORS[suffix], known=known))
    raise ConfigError(
        f"cannot tell the format of {path}: expected u.data or ratings.dat (MovieLens), "
        ".csv or .jsonl"
    )


def _existing(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"interactions file {path} does not exist")
    return path


class _Rows:
    """Turns one file's cells into rows: the checks every format shares."""

    def __init__(self, path: Path, known: Container[str] | None, require_ts: bool) -> None:
        self.path, self.name, self.known, self.require_ts = path, str(path), known, require_ts

    def fail(self, line_no: int, problem: str) -> DataFormatError:
        return DataFormatError(self.name, line_no, problem)

    def item(self, line_no: int, raw: str) -> str:
        known = self.known
        if known is not None and raw in known:
            return raw
        # '007' is item 7; stripped as text (int() refuses over 4,300 digits)
        item = (raw.lstrip("0") or "0") if raw.isascii() and raw.isdigit() else raw
        if known is not None and item not in known:
            raise self.fail(line_no, f"item {raw!r} is not in the catalog")
        return item

    def row(self, line_no: int, user: str, item: str, rating: float | None, liked: bool | None,
            ts: int | None) -> InteractionRow:
        if ts is None and self.require_ts:
            raise self.fail(line_no, "no timestamp")
        for name, value in (("user", user), ("item", item)):
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise self.fail(line_no, f"the {name} id {value[:40]!r} holds a control "
                                         "character (a NUL byte, say)")
        try:
            return InteractionRow(user, item, rating, liked, ts)
        except ValueError as e:
            raise self.fail(line_no, str(e)) from None

    def text_row(self, line_no: int, user: str, item: str, rating: str, liked: str,
                 ts: str) -> InteractionRow:
        """A row from text cells (empty: not given)."""
        user, item, rating, liked, ts = (c.strip() for c in (user, item, rating, liked, ts))
        if not user or not item:
            raise self.fail(line_no, "empty user or item id")
        item = self.item(line_no, item)
        try:
            value = float(rating) if rating else None
        except ValueError:
            raise self.fail(line_no, f"rating {rating!r} is not a number") from None
        try:
            stamp = int(ts) if ts else None
        except ValueError:
            raise self.fail(line_no, f"timestamp {ts!r} is not a whole number") from None
        flag = None
        if liked:
            if liked.lower() not in _TRUE | _FALSE:
                raise self.fail(line_no, f"liked must be true or false (1 or 0), got {liked!r}")
            flag = liked.lower() in _TRUE
        return self.row(line_no, user, item, value, flag, stamp)


def read_separated(
    path: Path, sep: str, *, known: Container[str] | None = None
) -> Iterator[InteractionRow]:
    """`user sep item sep rating sep timestamp` lines, as in u.data and ratings.dat; the
    timestamp is required, the rating may be empty (a bare interaction)."""
    rows = _Rows(_existing(path), known, require_ts=True)
    with rows.path.open(encoding="latin-1") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(sep)
            if len(fields) != 4:
                raise rows.fail(line_no, f"expected 4 fields, got {len(fields)}")
            user, item, rating, ts = fields
            yield rows.text_row(line_no, user, item, rating, "", ts)


def read_csv(
    path: Path, *, known: Container[str] | None = None, require_ts: bool = False
) -> Iterator[InteractionRow]:
    """A header row with user and item, optionally rating, liked and timestamp (required
    with `require_ts`); other columns are ignored."""
    rows = _Rows(_existing(path), known, require_ts)
    with rows.path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise rows.fail(1, "empty file: expected a header row") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise rows.fail(1, f"bad CSV: {e}") from None
        required = ["user", "item"] + (["timestamp"] if require_ts else [])
        missing = [c for c in required if c not in header]
        if missing:
            raise rows.fail(1, f"header lacks column(s) {missing}")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise rows.fail(1, f"repeated column names: {dupes}")
        at = {name: n for n, name in enumerate(header)}
        wanted = [at.get(c) for c in ("user", "item", "rating", "liked", "timestamp")]
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as e:
                raise rows.fail(reader.line_num + 1, f"bad CSV: {e}") from None
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise rows.fail(reader.line_num,
                                f"expected {len(header)} cells, got {len(cells)}")
            user, item, rating, liked, ts = ("" if n is None else cells[n] for n in wanted)
            yield rows.text_row(reader.line_num, user, item, rating, liked, ts)


def read_jsonl(
    path: Path, *, known: Container[str] | None = None, require_ts: bool = False
) -> Iterator[InteractionRow]:
    """One object per line: user and item (strings or whole numbers), rating (a number),
    liked (true/false) and timestamp (a whole number), each optional or null; other keys
    are ignored."""
    rows = _Rows(_existing(path), known, require_ts)
    for line_no, record in json_objects(rows.path):
        yield _json_row(rows, line_no, record)


def _json_row(rows: _Rows, line_no: int, record: dict[str, Any]) -> InteractionRow:
    ids: list[str] = []
    for key in ("user", "item"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise rows.fail(line_no, f"{key!r} must be a non-empty string or whole number, "
                                     f"got {value!r}")
        ids.append(str(value).strip())
    rating, liked, ts = record.get("rating"), record.get("liked"), record.get("timestamp")
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int | float)
                               or not math.isfinite(rating)):
        raise rows.fail(line_no, f"'rating' must be a number or null, got {rating!r}")
    if liked is not None and not isinstance(liked, bool):
        raise rows.fail(line_no, f"'liked' must be true, false or null, got {liked!r}")
    if isinstance(ts, str) and ts.strip():
        try:
            ts = int(ts)
        except ValueError:
            raise rows.fail(line_no, f"timestamp {ts!r} is not a whole number") from None
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
        raise rows.fail(line_no, f"'timestamp' must be a whole number or null, got {ts!r}")
    item = rows.item(line_no, ids[1])
    return rows.row(line_no, ids[0], item,
                    None if rating is None else float(rating), liked, ts)
