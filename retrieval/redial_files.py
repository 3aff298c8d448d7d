"""The ReDial folder (iEvaLM's processed form) → a rich movie catalog and seeker histories.

- `id2info.json`: movie id → name ("Title (Year)"), genre, plot, director, writer, star,
  imdb_id. Each becomes an Item whose text holds the title, genres, people and plot (what
  gets embedded) and whose metadata keeps the lists as list attributes (see
  retrieval/attributes.py), the year, and MovieLens-style `genre_<Name>` flags so the
  chat's genre vocabulary works unchanged.
- `valid_data.jsonl` (raw ReDial): one history per dialogue, the seeker's "user": the
  movies mentioned in it that the seeker liked (liked) or disliked (not liked), in the
  order they were first mentioned. The seeker is the initiator; the recommender's form is
  read when the seeker's is empty.

Errors name the file and the line (or key).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from retrieval.attributes import encode_list
from retrieval.errors import ConfigError, DataFormatError
from retrieval.interactions import InteractionRow
from retrieval.jsonl import json_objects
from retrieval.types import Item, MetadataValue

CATALOG_FILE = "id2info.json"
DIALOGUES_FILE = "valid_data.jsonl"
LIST_KEYS = {"genre": "genres", "director": "director", "writer": "writer", "star": "star"}
"""id2info.json's list fields → the attribute names the catalog uses."""
USER_PREFIX = "redial-"
_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
_MENTION = re.compile(r"@(\d+)")


def _folder_file(folder: Path, name: str) -> Path:
    path = Path(folder) / name
    if not path.is_file():
        raise ConfigError(f"{path} is missing: is {folder} the ReDial folder (shared/data/redial)?")
    return path


def genre_name(raw: str) -> str:
    """'sci-fi' → 'Sci-Fi', 'film-noir' → 'Film-Noir': display form of a ReDial genre."""
    return "-".join(p[:1].upper() + p[1:] for p in raw.strip().split("-"))


def load_redial_catalog(folder: Path) -> list[Item]:
    """Every movie of `id2info.json` as an Item, ids as in ReDial."""
    path = _folder_file(folder, CATALOG_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(str(path), getattr(e, "lineno", 1), f"invalid JSON: {e}") from None
    if not isinstance(data, dict) or not data:
        raise DataFormatError(str(path), 1, "expected a non-empty object of id → movie")
    all_genres = sorted({genre_name(g) for info in data.values() if isinstance(info, dict)
                         for g in info.get("genre") or [] if isinstance(g, str) and g.strip()})
    items: list[Item] = []
    for movie_id, info in data.items():
        result = _movie(movie_id, info, all_genres)
        if isinstance(result, str):
            raise DataFormatError(str(path), 1, f"movie {movie_id!r}: {result}")
        items.append(result)
    return items


def _movie(movie_id: str, info: Any, all_genres: list[str]) -> Item | str:
    if not isinstance(info, dict):
        return "expected an object"
    name = info.get("name")
    if not isinstance(name, str) or not name.strip():
        return f"'name' must be a non-empty string, got {name!r}"
    title = name.strip()
    metadata: dict[str, MetadataValue] = {}
    m = _YEAR.search(title)
    bare = title[: m.start()].strip() if m else title
    metadata["title"] = bare or title
    if m:
        metadata["year"] = int(m.group(1))
    lists: dict[str, list[str]] = {}
    for raw_key, key in LIST_KEYS.items():
        got = info.get(raw_key) or []
        if not isinstance(got, list) or not all(isinstance(v, str) for v in got):
            return f"{raw_key!r} must be a list of strings, got {got!r}"
        vals = [genre_name(v) if key == "genres" else v.strip() for v in got if v.strip()]
        lists[key] = list(dict.fromkeys(vals))
        joined = encode_list(lists[key])
        if joined is None:
            return f"{raw_key!r} holds a value with '|', which list attributes cannot store"
        if joined:
            metadata[key] = joined
    for g in all_genres:
        metadata[f"genre_{g}"] = g in lists["genres"]
    imdb = info.get("imdb_id")
    if isinstance(imdb, str) and imdb.strip():
        metadata["imdb_id"] = imdb.strip()
    plot = info.get("plot") if isinstance(info.get("plot"), str) else ""
    parts = [title]
    for label, key in (("Genres", "genres"), ("Directed by", "director"),
                       ("Starring", "star"), ("Written by", "writer")):
        if lists[key]:
            parts.append(f"{label}: {', '.join(lists[key])}")
    if plot and plot.strip():
        parts.append(plot.strip())
    text = ". ".join(p.rstrip(".") for p in parts) + "."
    return Item(id=str(movie_id), title=title, text=text, metadata=metadata)


def load_redial_interactions(folder: Path, *, known: set[str] | None = None
                             ) -> list[InteractionRow]:
    """The seekers' likes and dislikes of `valid_data.jsonl`, one user per dialogue.

    Movies the catalog does not hold (`known`) are skipped, as are ones the seeker did not
    say they liked or disliked."""
    path = _folder_file(folder, DIALOGUES_FILE)
    rows: list[InteractionRow] = []
    for line_no, record in json_objects(path):
        if "conversationId" not in record:
            raise DataFormatError(str(path), line_no, "expected a ReDial dialogue object")
        rows += _seeker_rows(record, known)
    return rows


def _seeker_rows(record: dict[str, Any], known: set[str] | None) -> list[InteractionRow]:
    answers = record.get("initiatorQuestions") or record.get("respondentQuestions") or {}
    if not isinstance(answers, dict):
        return []
    order: dict[str, None] = {}
    for message in record.get("messages") or []:
        for movie in _MENTION.findall(str(message.get("text", ""))):
            order.setdefault(movie, None)
    for movie in record.get("movieMentions") or {}:
        order.setdefault(str(movie), None)
    user = f"{USER_PREFIX}{record['conversationId']}"
    rows: list[InteractionRow] = []
    for movie in order:
        answer = answers.get(movie)
        if not isinstance(answer, dict) or (known is not None and movie not in known):
            continue
        liked = answer.get("liked")
        if liked in (0, 1):
            rows.append(InteractionRow(user, movie, liked=liked == 1, ts=len(rows) + 1))
    return rows
