"""The catalog as the agent's tools see it: every item's title and attributes in memory,
titles found by rapidfuzz, and the hard attribute filter.

Loaded once per agent (a few thousand items: one Chroma read). Attribute values come from
the items' metadata whatever their shape: a list, a 'a|b' string, or MovieLens's boolean
`genre_<Name>` flags; an attribute an item does not state can never prove an exclusion,
so such an item is ruled out by it (the same rule as the chat profile's genres).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from recagent.agent.types import Condition, FilterArgs
from recagent.chat.lookup import GENRE_PREFIX, PLACEHOLDER_GENRES, normalise_title
from recagent.types import Item
from retrieval.store import CatalogStore

TITLE_CUTOFF = 90.0
"""rapidfuzz ratio between normalised titles that counts as the same title (a typo)."""
SAID_CUTOFF = 90.0
"""rapidfuzz partial_ratio that counts as words occurring in the message."""
VALUE_CUTOFF = 90.0
NOT_ATTRIBUTES = frozenset({"title", "text", "plot", "imdb_id", "id", "url", "year", "name"})
ALIASES = {"genres": "genre", "stars": "star", "actor": "star", "actors": "star",
           "cast": "star", "directors": "director", "writers": "writer"}
"""Names a model may use for an attribute → the name used here (singular)."""
_YEAR = re.compile(r"\((1[89]\d\d|20\d\d)\)")


def canonical(attribute: str) -> str:
    key = attribute.strip().lower()
    return ALIASES.get(key, key)


def fold(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def said(words: str, message: str) -> bool:
    """Whether `words` occur in the message (case, punctuation and small typos aside)."""
    a, b = fold(words), fold(message)
    return bool(a) and (a in b or fuzz.partial_ratio(a, b) >= SAID_CUTOFF)


def item_values(item: Item) -> dict[str, set[str]]:
    """Every attribute of the item → its values, lower-cased; the year apart."""
    values: dict[str, set[str]] = {}
    for key, value in item.metadata.items():
        if key.startswith(GENRE_PREFIX):
            if value is True:
                values.setdefault("genre", set()).add(key[len(GENRE_PREFIX):].lower())
            continue
        name = canonical(key)
        if name in NOT_ATTRIBUTES:
            continue
        raw: Iterable[object] = value if isinstance(value, list) else (
            str(value).split("|") if isinstance(value, str) else ())
        got = {str(v).strip().lower() for v in raw if str(v).strip()}
        if got:
            values.setdefault(name, set()).update(got - PLACEHOLDER_GENRES)
    return values


def item_year(item: Item) -> int | None:
    year = item.metadata.get("year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    found = _YEAR.findall(item.title)
    return int(found[-1]) if found else None


@dataclass(frozen=True)
class Limits:
    """The hard limits a plan's filter steps set, checked on every item shown."""

    include: tuple[Condition, ...] = ()
    exclude: tuple[Condition, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    def __add__(self, args: FilterArgs) -> Limits:
        year_min = max(filter(None, (self.year_min, args.year_min)), default=None)
        year_max = min(filter(None, (self.year_max, args.year_max)), default=None)
        return Limits((*self.include, *args.include), (*self.exclude, *args.exclude),
                      year_min, year_max)

    @property
    def empty(self) -> bool:
        return self == Limits()

    def problems(self, item: Item) -> list[str]:
        """Why the item breaks these limits (empty: it keeps them)."""
        have = item_values(item)
        out: list[str] = []
        for c in self.include:
            if not have.get(canonical(c.attribute), set()) & {v.lower() for v in c.values}:
                out.append(f"has no {c.attribute} {' or '.join(c.values)}")
        for c in self.exclude:
            got = have.get(canonical(c.attribute))
            if got is None:
                out.append(f"states no {c.attribute}, so cannot be shown without "
                           f"{', '.join(c.values)}")
            elif got & {v.lower() for v in c.values}:
                bad = sorted(got & {v.lower() for v in c.values})
                out.append(f"has the ruled-out {c.attribute} {', '.join(bad)}")
        year = item_year(item)
        if self.year_min is not None or self.year_max is not None:
            if year is None:
                out.append("has no known year")
            elif self.year_min is not None and year < self.year_min:
                out.append(f"is from {year}, before {self.year_min}")
            elif self.year_max is not None and year > self.year_max:
                out.append(f"is from {year}, after {self.year_max}")
        return out


class CatalogIndex:
    """Every item in memory: titles for rapidfuzz, attribute values for the filter."""

    def __init__(self, items: Sequence[Item]) -> None:
        self.items = {i.id: i for i in items}
        self.ids = list(self.items)
        self._names = [normalise_title(i.title) for i in items]
        self._by_name: dict[str, list[str]] = {}
        for item, name in zip(items, self._names, strict=True):
            self._by_name.setdefault(name, []).append(item.id)
        self.values: dict[str, set[str]] = {}
        for item in items:
            for name, got in item_values(item).items():
                self.values.setdefault(name, set()).update(got)

    @classmethod
    def load(cls, store: CatalogStore) -> CatalogIndex:
        ids = store.collection.get(include=[])["ids"]
        return cls(list(store.get(ids).values()))

    def item_values(self, item_id: str) -> dict[str, set[str]]:
        return item_values(self.items[item_id])

    @property
    def attributes(self) -> list[str]:
        return sorted(self.values)

    def find_title(self, words: str) -> str | None:
        """The item these words name: the exact normalised title (the written year
        first), else the closest title by rapidfuzz ratio >= TITLE_CUTOFF."""
        wanted = normalise_title(words)
        if not wanted:
            return None
        exact = self._by_name.get(wanted)
        if exact:
            year = re.findall(r"\b(1[89]\d\d|20\d\d)\b", words)
            same = [i for i in exact if year and item_year(self.items[i]) == int(year[-1])]
            return (same or exact)[0]
        hit = process.extractOne(wanted, self._names, scorer=fuzz.ratio,
                                 score_cutoff=TITLE_CUTOFF)
        return self.ids[hit[2]] if hit else None

    def value(self, attribute: str, words: str) -> str | None:
        """The catalog's own value of `attribute` these words name, or None."""
        known = self.values.get(canonical(attribute))
        wanted = words.strip().lower()
        if not known or not wanted:
            return None
        if wanted in known:
            return wanted
        hit = process.extractOne(wanted, list(known), scorer=fuzz.ratio,
                                 score_cutoff=VALUE_CUTOFF)
        return str(hit[0]) if hit else None

    def select(self, limits: Limits, within: Sequence[str] | None = None) -> list[str]:
        """The ids (of `within`, default the whole catalog) that keep every limit."""
        pool = self.ids if within is None else [i for i in within if i in self.items]
        return [i for i in pool if not limits.problems(self.items[i])]
