"""A version stamp: a small file whose content changes whenever the data behind it does.

Every ingest (of items or interactions) and every fit writes a new one after its last
write; a long-running process compares the stamp with the one its in-memory parts were
built from and rebuilds them when it differs. Reading it is one small file read, cheap
enough for every request. The stamp is written whole (a temporary file renamed over it),
so a reader sees the old token or the new one, never half of one.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path


class VersionStamp:
    """The stamp file at `path` (its folder is created on the first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        """The current token; "" when nothing has written one yet."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def bump(self) -> str:
        """Write a new token (unique: time and a random part) and return it."""
        token = f"{time.time_ns()}-{uuid.uuid4().hex}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        temporary.write_text(token, encoding="utf-8")
        os.replace(temporary, self.path)
        return token
