"""Interactions (ratings, likes, views) kept durably beside the catalog, in SQLite.

One database file (`HOME/interactions.sqlite`, see recagent.wiring.open_interactions)
holds the interactions of every catalog, each row scoped by its collection name. A row is
(user, item, rating, liked, ts); its natural key is (collection, user, item, ts), so a user
who rates an item again at a later time adds a row, and the same rating re-read updates
nothing.

Ingestion is:

- idempotent: re-ingesting a file adds and changes nothing (an upsert on the natural key);
- incremental: new rows are added and changed ratings or likes updated; rows absent from
  the input are kept (an ingest never deletes);
- all or nothing: one transaction per ingest; an exception (a bad row from a generator,
  a KeyboardInterrupt) rolls it back, and a killed process leaves only uncommitted pages,
  which SQLite ignores. The database runs in WAL mode: readers see the last committed
  state while a writer writes, and a second writer waits (a busy timeout) rather than
  failing at once.

Within one input a key given twice counts once, the last line winning (a later line is
taken as the newer); the report's `total` counts distinct keys. Rows are read back in
time order: by timestamp, rows without one first, ties in the order they first arrived.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from retrieval.errors import ConfigError
from retrieval.stamp import VersionStamp
from retrieval.types import POSITIVE_RATING, IngestReport, Interaction, UserHistory

DB_NAME = "interactions.sqlite"
"""The database's file name in the recagent home folder."""
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0
"""How long an ingest or a read waits for another process's write before giving up."""
NO_TS = -(2**63)
"""The key value of a row without a timestamp (a NULL never equals another in a key)."""
_MAX_TS = 2**63 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    id         INTEGER PRIMARY KEY,  -- arrival order: the tie-break of equal times
    collection TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    item_id    TEXT    NOT NULL,
    tkey       INTEGER NOT NULL,     -- ts, or NO_TS for a row without one
    ts         INTEGER,
    rating     REAL,
    liked      INTEGER CHECK (liked IN (0, 1)),
    UNIQUE (collection, user_id, item_id, tkey)
);
CREATE INDEX IF NOT EXISTS interactions_in_time ON interactions (collection, tkey, id);
"""

_STAGE = """
CREATE TEMP TABLE incoming (
    seq     INTEGER PRIMARY KEY,
    user_id TEXT    NOT NULL,
    item_id TEXT    NOT NULL,
    tkey    INTEGER NOT NULL,
    ts      INTEGER,
    rating  REAL,
    liked   INTEGER,
    UNIQUE (user_id, item_id, tkey)
)
"""
_STAGE_ROW = """
INSERT INTO incoming (user_id, item_id, tkey, ts, rating, liked) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id, item_id, tkey) DO UPDATE SET rating = excluded.rating,
                                                   liked = excluded.liked
"""
_COUNT = """
SELECT count(*),
       coalesce(sum(m.id IS NULL), 0),
       coalesce(sum(m.id IS NOT NULL AND (m.rating IS NOT i.rating OR m.liked IS NOT i.liked)), 0)
FROM incoming AS i LEFT JOIN interactions AS m
  ON m.collection = ? AND m.user_id = i.user_id AND m.item_id = i.item_id AND m.tkey = i.tkey
"""
_UPSERT = """
INSERT INTO interactions (collection, user_id, item_id, tkey, ts, rating, liked)
SELECT ?, user_id, item_id, tkey, ts, rating, liked FROM incoming
WHERE seq BETWEEN ? AND ? ORDER BY seq
ON CONFLICT (collection, user_id, item_id, tkey) DO UPDATE
SET rating = excluded.rating, liked = excluded.liked
WHERE rating IS NOT excluded.rating OR liked IS NOT excluded.liked
"""
_POSITIVE = (f"(CASE WHEN liked IS NOT NULL THEN liked = 1 WHEN rating IS NULL THEN 1 "
             f"ELSE rating >= {POSITIVE_RATING!r} END)")
"""`Interaction.polarity > 0` in SQL (tests/retrieval/test_interactions.py checks they agree)."""
_COLUMNS = "user_id, item_id, rating, liked, ts"
_IN_TIME = "ORDER BY tkey, id"


@dataclass(frozen=True, slots=True)
class InteractionRow:
    """One stored interaction: a rating (any number >= 0, kept as given: MovieLens uses
    1-5), a like or dislike, both, or neither (a view: implicit positive feedback)."""

    user: str
    item: str
    rating: float | None = None
    liked: bool | None = None
    ts: int | None = None
    """Unix seconds (any whole number); None when the source has no time."""

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not self.user:
            raise ValueError(f"user must be a non-empty string, got {self.user!r}")
        if not isinstance(self.item, str) or not self.item:
            raise ValueError(f"item must be a non-empty string, got {self.item!r}")
        r = self.rating
        if r is not None and (isinstance(r, bool) or not isinstance(r, int | float)
                              or not math.isfinite(r) or r < 0):
            raise ValueError(f"rating must be a finite number >= 0, got {r!r}")
        if self.liked is not None and not isinstance(self.liked, bool):
            raise ValueError(f"liked must be true, false or empty, got {self.liked!r}")
        t = self.ts
        if t is not None and (isinstance(t, bool) or not isinstance(t, int)
                              or not NO_TS < t <= _MAX_TS):
            raise ValueError(f"timestamp must be a whole number (64-bit), got {t!r}")

    @property
    def polarity(self) -> int:
        """+1 positive, -1 negative, 0 neutral: exactly `retrieval.types.Interaction.polarity`."""
        return Interaction.model_construct(
            item_id=self.item, rating=self.rating, liked=self.liked, ts=self.ts).polarity

    @property
    def positive(self) -> bool:
        return self.polarity > 0


def _check_collection(collection: str) -> None:
    if not isinstance(collection, str) or not collection:
        raise ConfigError(f"collection must be a non-empty name, got {collection!r}")


def _natural(user: str) -> tuple[int, int | str]:
    return (0, int(user)) if user.isdigit() else (1, user)


def _row(values: tuple[Any, ...]) -> InteractionRow:
    user, item, rating, liked, ts = values
    return InteractionRow(user, item, rating, None if liked is None else bool(liked), ts)


class InteractionStore:
    """The interactions of every collection, in one SQLite file (created if missing)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        if busy_timeout_s < 0:
            raise ConfigError(f"busy_timeout_s must be at least 0, got {busy_timeout_s}")
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer recagent (schema {version}, this one "
                    f"reads {SCHEMA_VERSION}); upgrade recagent or use another home folder")
            if version < SCHEMA_VERSION:
                self._write(db, lambda: self._create(db))

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ---- connections -----------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit), WAL, full sync."""
        try:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the interactions database {self.path}: {e}") from e
        try:
            with self._errors():
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                yield db
        finally:
            db.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise ConfigError(
                    f"the interactions database {self.path} stayed busy for "
                    f"{self.busy_timeout_s:g} s (another ingest is writing); let it finish, "
                    "then run this again") from e
            raise ConfigError(f"the interactions database {self.path} failed: {e}") from e
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"{self.path} is not a usable interactions database: {e}") from e

    @staticmethod
    def _write(db: sqlite3.Connection, work: Callable[[], Any]) -> Any:
        """`work` in one write transaction: committed whole, or rolled back on any
        exception (KeyboardInterrupt included)."""
        db.execute("BEGIN IMMEDIATE")  # take the write lock now (waiting up to the timeout)
        try:
            result = work()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    # ---- writing ---------------------------------------------------------------------

    def ingest(
        self,
        collection: str,
        rows: Iterable[InteractionRow],
        *,
        batch_size: int = 20_000,
        progress: Callable[[int, int], None] | None = None,
    ) -> IngestReport:
        """Add new rows and update changed ones of `collection`, in one transaction.

        `rows` may be a generator: it is consumed inside the transaction, so an exception
        it raises leaves the store as it was. `progress(written, total)` is called after
        each batch written to the table (for a progress bar)."""
        _check_collection(collection)
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")

        def work() -> IngestReport:
            db.execute("DROP TABLE IF EXISTS temp.incoming")
            db.execute(_STAGE)
            numbered = enumerate(rows, 1)
            while batch := list(islice(numbered, batch_size)):
                db.executemany(_STAGE_ROW, (_params(n, r) for n, r in batch))
            total, added, updated = db.execute(_COUNT, (collection,)).fetchone()
            for start in range(1, total + 1, batch_size):
                db.execute(_UPSERT, (collection, start, start + batch_size - 1))
                if progress is not None:
                    progress(min(start + batch_size - 1, total), total)
            db.execute("DROP TABLE temp.incoming")
            return IngestReport(added=added, updated=updated,
                                unchanged=total - added - updated, total=total)

        with self._connect() as db:
            report: IngestReport = self._write(db, work)
        if report.added or report.updated:  # committed: long-running readers rebuild
            self.stamp(collection).bump()
        return report

    def stamp(self, collection: str) -> VersionStamp:
        """The version stamp of `collection`'s interactions, written anew by every ingest
        that changed them (a file beside the database, see retrieval/stamp.py)."""
        _check_collection(collection)
        name = collection if re.fullmatch(r"[A-Za-z0-9._-]{1,100}", collection) else \
            hashlib.sha256(collection.encode()).hexdigest()[:16]
        return VersionStamp(self.path.with_name(f"{self.path.name}.{name}.version"))

    # ---- reading ---------------------------------------------------------------------

    def _select(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._connect() as db:
            return db.execute(sql, params).fetchall()

    def interactions(self, collection: str) -> list[InteractionRow]:
        """Every row of `collection` in time order."""
        _check_collection(collection)
        return [_row(v) for v in self._select(
            f"SELECT {_COLUMNS} FROM interactions WHERE collection = ? {_IN_TIME}", (collection,))]

    def pairs(self, collection: str, *, positive_only: bool = False) -> list[tuple[str, str]]:
        """(user, item) in time order, e.g. for the collaborative retrievers; with
        `positive_only` only positive feedback (`Interaction.polarity > 0`: a rating of at
        least POSITIVE_RATING, a like, or a bare interaction)."""
        _check_collection(collection)
        where = f" AND {_POSITIVE}" if positive_only else ""
        sql = f"SELECT user_id, item_id FROM interactions WHERE collection = ?{where} {_IN_TIME}"
        return [(u, i) for u, i in self._select(sql, (collection,))]

    def count(self, collection: str) -> int:
        _check_collection(collection)
        return int(self._select("SELECT count(*) FROM interactions WHERE collection = ?",
                                (collection,))[0][0])

    def users(self, collection: str) -> list[str]:
        """The users of `collection`, numeric ids in numeric order, then the rest."""
        _check_collection(collection)
        found = self._select("SELECT DISTINCT user_id FROM interactions WHERE collection = ?",
                             (collection,))
        return sorted((u for (u,) in found), key=_natural)

    def by_user(self, collection: str) -> dict[str, list[InteractionRow]]:
        """Each user's rows in time order, users as in `users()`."""
        grouped: dict[str, list[InteractionRow]] = {}
        for row in self.interactions(collection):
            grouped.setdefault(row.user, []).append(row)
        return {u: grouped[u] for u in sorted(grouped, key=_natural)}

    def history(self, collection: str, user: str) -> UserHistory:
        """`user`'s history for the recommender: one interaction per item (the latest),
        oldest first. A ConfigError when the user has none, or a rating is out of the
        0-10 range an `Interaction` allows."""
        _check_collection(collection)
        found = self._select(f"SELECT {_COLUMNS} FROM interactions WHERE collection = ? "
                             f"AND user_id = ? {_IN_TIME}", (collection, user))
        if not found:
            raise ConfigError(f"user {user!r} has no interactions in collection {collection!r}")
        latest: dict[str, InteractionRow] = {}
        for values in found:
            row = _row(values)
            latest.pop(row.item, None)  # re-inserted: the item moves to its latest time
            latest[row.item] = row
        try:
            return UserHistory(user_id=user, interactions=[
                Interaction(item_id=r.item, rating=r.rating, liked=r.liked, ts=r.ts)
                for r in latest.values()])
        except ValidationError as e:
            raise ConfigError(f"user {user!r}'s interactions do not make a history: "
                              f"{e.errors()[0]['msg']}") from None


def _params(n: int, row: InteractionRow) -> tuple[Any, ...]:
    if not isinstance(row, InteractionRow):
        raise ConfigError(f"row {n} of the input is not an InteractionRow: {row!r}")
    liked = None if row.liked is None else int(row.liked)
    tkey = NO_TS if row.ts is None else row.ts
    return (row.user, row.item, tkey, row.ts, row.rating, liked)
