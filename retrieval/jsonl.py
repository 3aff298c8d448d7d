"""JSON lines: one object a line, read with the same checks for every data file (catalog,
interactions, ReDial dialogues), each problem a DataFormatError naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval.errors import DataFormatError


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a byte-order mark on line 1 is
    allowed, anything not UTF-8, not JSON or not an object is refused."""
    with Path(path).open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataFormatError(str(path), line_no, f"not valid UTF-8: {e}") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(str(path), line_no, f"invalid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DataFormatError(str(path), line_no, "expected a JSON object")
            yield line_no, record
