"""The session store on a real SQLite file: versions, feedback log, two stores at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from recagent.serve.schemas import Item, Message, SessionRecord
from recagent.serve.sessions import (
    MAX_MESSAGES,
    SessionConflict,
    SessionNotFound,
    SessionStore,
    default_url,
)


def record(session_id: str = "a" * 32) -> SessionRecord:
    return SessionRecord(session_id=session_id, state='{"k": 5, "profile": {}}')


def test_saved_sessions_come_back_as_they_were(tmp_path: Path) -> None:
    store = SessionStore(default_url(tmp_path))
    created = store.create(record())
    assert created.version == 1 and (tmp_path / "service.sqlite").is_file()
    changed = created.model_copy(update={
        "reply": "hi", "degraded": True, "degraded_reason": "deadline",
        "items": [Item(item_id="1", title="T", score=0.5, explanation="e", source="llm")],
        "messages": [Message(role="user", text="x"), Message(role="assistant", text="hi")]})
    saved = store.save(changed, feedback=("1", "seen"))
    assert saved.version == 2
    assert store.get("a" * 32) == saved
    assert store.feedback("a" * 32) == [("1", "seen")]
    assert store.count() == 1


def test_a_stale_save_is_refused_not_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    one, two = SessionStore(url), SessionStore(url)  # two replicas, one database
    loaded = one.create(record())
    also = two.get(loaded.session_id)
    one.save(loaded.model_copy(update={"reply": "first"}))
    with pytest.raises(SessionConflict, match="changed while"):
        two.save(also.model_copy(update={"reply": "second"}), feedback=("1", "like"))
    assert two.get(loaded.session_id).reply == "first"
    assert two.feedback(loaded.session_id) == []  # the refused save logged nothing


def test_unknown_sessions_and_long_conversations(tmp_path: Path) -> None:
    store = SessionStore(default_url(tmp_path))
    with pytest.raises(SessionNotFound, match="POST /v1/sessions"):
        store.get("b" * 32)
    loaded = store.create(record())
    many = [Message(role="user", text=str(n)) for n in range(MAX_MESSAGES + 5)]
    store.save(loaded.model_copy(update={"messages": many}))
    kept = store.get(loaded.session_id).messages
    assert len(kept) == MAX_MESSAGES and kept[-1].text == str(MAX_MESSAGES + 4)
