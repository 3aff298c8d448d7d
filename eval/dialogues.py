"""Recorded dialogues for the `conversation` protocol: the file format and title matching.

One test turn per JSONL line (docs/conversation.md; iEvaLM's processed ReDial files are in
this form): `dialog_id`, `turn_id`, `context` (the messages so far, seeker first, taking
turns), `rec` (the items the human recommender named next: titles exactly as the catalog's
`title`, or item ids) and optionally `entity` (what was mentioned so far). Other keys
(`resp`, `template`) are ignored. A bad line is a DataFormatError naming file and line;
a `rec` the catalog does not hold is one too (a target outside the catalog cannot be
scored fairly by anyone).

Mentions are found by `TitleIndex`: exact catalog titles in the text (ReDial writes
movies as "Title (Year)"), then each `entity` by its exact title or, failing that, by
rapidfuzz on titles without the year.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process

from recagent.errors import ConfigError, DataFormatError
from recagent.types import Item

FUZZY_MIN = 92.0
"""rapidfuzz WRatio (0-100) an entity needs against a catalog title (both without year)."""
_YEAR_END = re.compile(r"\s*\((\d{4})\)\s*$")
_YEAR_IN_TEXT = re.compile(r"\(\d{4}\)")
MAX_TITLE_WORDS = 14


@dataclass(frozen=True)
class DialogueTurn:
    """One test turn: what was said so far, and the items the recommender named next."""

    dialog_id: str
    turn_id: int
    context: tuple[str, ...]
    targets: tuple[str, ...]
    """Item ids, in the order the recommender named them, without repeats."""
    entity: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.dialog_id}_{self.turn_id}"

    @property
    def seeker_messages(self) -> list[str]:
        """The seeker's messages (even positions: the seeker speaks first)."""
        return [m for n, m in enumerate(self.context) if n % 2 == 0]


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return re.sub(r"[^a-z0-9()]+", " ", text).strip()


def _bare(title: str) -> str:
    return _key(_YEAR_END.sub("", title)) or _key(title)


class TitleIndex:
    """Catalog titles → item ids, for targets (exact) and mentions (exact, then fuzzy)."""

    def __init__(self, items: Iterable[Item], popularity: dict[str, int] | None = None) -> None:
        pop = popularity or {}
        self.ids: set[str] = set()
        self.exact: dict[str, str] = {}
        by_bare: dict[str, list[str]] = {}
        for item in items:
            self.ids.add(item.id)
            self.exact.setdefault(_key(item.title), item.id)
            by_bare.setdefault(_bare(item.title), []).append(item.id)
        # one id per bare title: the most popular of namesakes (ties: first in the catalog)
        self.bare = {b: max(ids, key=lambda i: pop.get(i, 0)) for b, ids in by_bare.items()}
        self._bare_keys = list(self.bare)

    def target(self, rec: str) -> str | None:
        """A `rec` entry: an item id, or a title exactly as the catalog has it."""
        if rec in self.ids:
            return rec
        return self.exact.get(_key(rec))

    def entity(self, text: str) -> str | None:
        """An entity string: exact title, exact title without year, then fuzzy."""
        exact = self.exact.get(_key(text)) or self.bare.get(_bare(text))
        if exact is not None:
            return exact
        if not _YEAR_END.search(text):
            return None  # a person, a genre, a bare word: fuzzy would invent a movie
        hit = process.extractOne(_bare(text), self._bare_keys, scorer=fuzz.WRatio,
                                 score_cutoff=FUZZY_MIN)
        return self.bare[hit[0]] if hit else None

    def in_text(self, text: str) -> list[str]:
        """Catalog titles written out in `text` ("... Title (Year) ..."), in order."""
        found: list[str] = []
        for m in _YEAR_IN_TEXT.finditer(text):
            words = text[: m.end()].split()
            for n in range(min(MAX_TITLE_WORDS, len(words)), 0, -1):  # longest title first
                hit = self.exact.get(_key(" ".join(words[-n:])))
                if hit is not None:
                    found.append(hit)
                    break
        return list(dict.fromkeys(found))

    def mentions(self, turn: DialogueTurn) -> list[str]:
        """The items mentioned in the turn's context, first mention first."""
        found: list[str] = []
        for message in turn.context:
            found += self.in_text(message)
        for e in turn.entity:
            hit = self.entity(e)
            if hit is not None:
                found.append(hit)
        return list(dict.fromkeys(found))


def _strings(record: dict[str, Any], key: str, *, required: bool) -> tuple[str, ...] | str:
    value = record.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"'{key}' must be a list of strings, got {type(value).__name__}"
    return tuple(value)


def load_turns(path: Path, index: TitleIndex) -> list[DialogueTurn]:
    """Every turn of a dialogue file; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"dialogue file {path} does not exist")
    turns: list[DialogueTurn] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            turn = _turn(line, index)
            if isinstance(turn, str):
                raise DataFormatError(str(path), line_no, turn)
            if turn.key in seen:
                raise DataFormatError(str(path), line_no, f"turn {turn.key} repeats line "
                                                          f"{seen[turn.key]}")
            seen[turn.key] = line_no
            turns.append(turn)
    if not turns:
        raise ConfigError(f"{path} holds no dialogue turns")
    return turns


def _turn(line: str, index: TitleIndex) -> DialogueTurn | str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return f"invalid JSON: {e.msg}"
    if not isinstance(record, dict):
        return "expected a JSON object"
    dialog, turn_id = record.get("dialog_id"), record.get("turn_id")
    if not isinstance(dialog, str | int) or isinstance(dialog, bool) or str(dialog) == "":
        return f"'dialog_id' must be a non-empty string or integer, got {dialog!r}"
    if not isinstance(turn_id, int) or isinstance(turn_id, bool):
        return f"'turn_id' must be an integer, got {turn_id!r}"
    context, rec = _strings(record, "context", required=True), _strings(record, "rec",
                                                                        required=True)
    entity = _strings(record, "entity", required=False)
    for part in (context, rec, entity):
        if isinstance(part, str):
            return part
    assert not isinstance(context, str) and not isinstance(rec, str)
    assert not isinstance(entity, str)
    if not context:
        return "'context' is empty: a turn needs at least the seeker's first message"
    if not rec:
        return "'rec' is empty: a test turn needs at least one target"
    targets: list[str] = []
    for title in rec:
        item = index.target(title)
        if item is None:
            return f"'rec' names {title!r}, which is neither a catalog title nor an item id"
        targets.append(item)
    return DialogueTurn(str(dialog), turn_id, context, tuple(dict.fromkeys(targets)), entity)


def dialogues(turns: Sequence[DialogueTurn]) -> dict[str, list[DialogueTurn]]:
    """Turns grouped by dialogue, each dialogue's turns in order."""
    out: dict[str, list[DialogueTurn]] = {}
    for t in turns:
        out.setdefault(t.dialog_id, []).append(t)
    return {d: sorted(ts, key=lambda t: t.turn_id) for d, ts in out.items()}
