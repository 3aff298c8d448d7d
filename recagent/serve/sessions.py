"""Chat sessions in a database, through SQLAlchemy: SQLite in the home folder by default,
any server database by URL. Nothing a second replica needs lives only in memory: each
request loads the session, and saves it only if nobody saved it meanwhile (a version
check), so two service processes sharing the database stay consistent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from recagent.errors import RecagentError
from recagent.serve.schemas import Item, Message, SessionRecord

DB_NAME = "service.sqlite"
MAX_MESSAGES = 200
"""Messages kept per session (the oldest drop out): a session's row stays small."""

_meta = MetaData()
_sessions = Table(
    "sessions", _meta,
    Column("session_id", String(32), primary_key=True),
    Column("state", Text, nullable=False),
    Column("reply", Text),
    Column("items", Text, nullable=False),
    Column("messages", Text, nullable=False),
    Column("degraded", Boolean, nullable=False),
    Column("degraded_reason", String(64)),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
_feedback = Table(
    "feedback", _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(32), nullable=False, index=True),
    Column("item_id", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", Float, nullable=False),
)


class SessionNotFound(RecagentError):
    """No session with this id."""


class SessionConflict(RecagentError):
    """Another request saved the session after this one loaded it."""


def default_url(home: Path) -> str:
    return f"sqlite:///{home / DB_NAME}"


def driver_url(url: str) -> str:
    """A plain postgresql:// (or postgres://) URL through psycopg 3, the driver the serve
    extra installs (SQLAlchemy's default for it would be psycopg2)."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


class SessionStore:
    """Sessions and the feedback given in them, in the database at `url`."""

    def __init__(self, url: str) -> None:
        url = driver_url(url)
        sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(
            url, connect_args={"timeout": 30} if sqlite else {}, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        for attempt in range(3):  # two replicas starting at once race to create the tables
            try:
                _meta.create_all(self.engine)
                break
            except OperationalError:
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False

    def create(self, record: SessionRecord) -> SessionRecord:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(_sessions).values(**_row(record), version=1, created_at=now,
                                                  updated_at=now))
        return record.model_copy(update={"version": 1})

    def get(self, session_id: str) -> SessionRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(_sessions).where(
                _sessions.c.session_id == session_id)).mappings().first()
        if row is None:
            raise SessionNotFound(f"no session {session_id}: create one with POST /v1/sessions")
        return SessionRecord(
            session_id=row["session_id"], state=row["state"], reply=row["reply"],
            items=[Item.model_validate(i) for i in json.loads(row["items"])],
            messages=[Message.model_validate(m) for m in json.loads(row["messages"])],
            degraded=row["degraded"], degraded_reason=row["degraded_reason"],
            version=row["version"])

    def save(self, record: SessionRecord, *,
             feedback: tuple[str, str] | None = None) -> SessionRecord:
        """Store `record` over the version it was loaded at (`record.version`); raises
        SessionConflict when the stored one is newer. `feedback` (item id, kind) is logged
        in the same transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(_sessions)
                .where(_sessions.c.session_id == record.session_id,
                       _sessions.c.version == record.version)
                .values(**_row(record), version=record.version + 1, updated_at=now))
            if done.rowcount != 1:
                raise SessionConflict(
                    f"session {record.session_id} changed while this request ran; "
                    "send it again")
            if feedback is not None:
                conn.execute(insert(_feedback).values(session_id=record.session_id,
                                                      item_id=feedback[0], kind=feedback[1],
                                                      at=now))
        return record.model_copy(update={"version": record.version + 1})

    def feedback(self, session_id: str) -> list[tuple[str, str]]:
        """(item id, kind) given in this session, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_feedback.c.item_id, _feedback.c.kind)
                                .where(_feedback.c.session_id == session_id)
                                .order_by(_feedback.c.id)).all()
        return [(r[0], r[1]) for r in rows]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_sessions)).scalar_one())


def _row(record: SessionRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id, "state": record.state, "reply": record.reply,
        "items": json.dumps([i.model_dump(mode="json") for i in record.items]),
        "messages": json.dumps([m.model_dump(mode="json")
                                for m in record.messages[-MAX_MESSAGES:]]),
        "degraded": record.degraded, "degraded_reason": record.degraded_reason,
    }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: readers never wait for a writer, and two processes can share the file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
