"""Per-user results, and the append-only files that make an interrupted run resumable.

A result is written (and flushed) the moment its user finishes, so Ctrl-C loses at most
the users in flight; a torn last line from a kill is ignored on reading.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class UserResult(BaseModel):
    """One ranker's answer for one user in one setting, with its cost and validity."""

    model_config = ConfigDict(extra="forbid")

    run: str
    user: str
    setting: int
    history_len: int
    ranking: list[str]
    """Candidate ids, best first; empty for a failed user (scores 0)."""
    failed: bool = False
    error: str | None = None
    degraded: bool = False
    parse_failure: bool = False
    repaired: bool = False
    invented: int = 0
    """Answers that named no candidate (unknown labels or ids), dropped by repair."""
    reasked: bool = False
    filled: int = 0
    """Items appended from candidate order because the model gave too few."""
    attempts: int = 0
    llm_skipped: bool = False
    """The LLM was not called: the target was not among the candidates (pipeline protocol
    with llm_only_when_retrieved), so no answer could have scored."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_s: float = 0.0
    total_s: float = 0.0
    """Time inside Recommender.recommend; minus llm_s it is our own overhead."""
    case: str = ""
    """The `Case.key` answered: a stored result is reused only for the same case."""


Record = TypeVar("Record", bound=BaseModel)


class ResultLog(Generic[Record]):
    """Append-only JSON Lines of one record type, safe to share between worker threads."""

    def __init__(self, path: Path, record: type[Record]) -> None:
        self.path = path
        self.record = record
        self._lock = threading.Lock()

    def read(self) -> list[Record]:
        """Finished records in write order; a line cut short by a kill is skipped."""
        done: list[Record] = []
        if not self.path.exists():
            return done
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    done.append(self.record.model_validate_json(line))
                except ValidationError:
                    continue
        return done

    def append(self, result: Record) -> None:
        line = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
        with self._lock:
            append_line(self.path, line)


def append_line(path: Path, line: str) -> None:
    """Append one line and sync it to disk; a line torn by an earlier kill is ended first,
    so the new record never runs into it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        if f.tell() and not _ends_with_newline(path):
            f.write("\n")
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines file being appended to; a line cut short by a kill (the
    record it held is run again) is skipped."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
