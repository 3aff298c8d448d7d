"""How an Item is kept as a Chroma row: its metadata plus the store's own prefixed keys,
and the rebuild of the Item from such a row (any metadata keys ride through unchanged)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from retrieval.types import Item

INTERNAL_PREFIX = "_ra_"
"""Metadata keys the store adds; an Item's own metadata may not use this prefix."""
HASH_KEY = INTERNAL_PREFIX + "hash"
VECTOR_KEY = INTERNAL_PREFIX + "vec"
TITLE_KEY = INTERNAL_PREFIX + "title"
READ_CHUNK = 1000
"""Ids per Chroma read (its SQLite has a limit on bound variables)."""


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def item_from_row(id_: str, document: str | None, metadata: Any) -> Item:
    """Rebuild an Item exactly as ingested: internal keys are dropped, the title restored."""
    md = dict(metadata or {})
    own = {k: v for k, v in md.items() if not k.startswith(INTERNAL_PREFIX)}
    title = md.get(TITLE_KEY) or own.get("title") or id_
    return Item(id=id_, title=str(title), text=document or "", metadata=own)
