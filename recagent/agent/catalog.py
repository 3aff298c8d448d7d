"""The catalog as the agent's tools see it: every item's title and attributes in memory,
titles found by rapidfuzz, and the hard attribute filter (retrieval/attributes.py).

Loaded once per agent (a few thousand items: one Chroma read). A value the model names is
resolved to the catalog's own spelling through the attribute's vocabulary before any
filter is built; an item that does not state an attribute can never prove an exclusion,
so such an item is ruled out by it (the filter's default).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from recagent.agent.types import Condition, FilterArgs
from recagent.chat.lookup import normalise_title
from recagent.chat.parse import STATED
from recagent.types import Item
from retrieval.attributes import (
    GENRE_FLAG_PREFIX,
    AttributeFilter,
    filter_ids,
    normalise,
    values,
    violations,
    vocabulary,
)
from retrieval.store import CatalogStore

TITLE_CUTOFF = 90.0
"""rapidfuzz ratio between normalised titles that counts as the same title (a typo)."""
SAID_CUTOFF = 90.0
"""rapidfuzz partial_ratio that counts as words occurring in the message."""
VALUE_CUTOFF = 90.0
NOT_ATTRIBUTES = frozenset({"title", "text", "plot", "imdb_id", "id", "url", "year", "name"})
ALIASES = {"genre": "genres", "stars": "star", "actor": "star", "actors": "star",
           "cast": "star", "directors": "director", "writers": "writer"}
"""Names a model may use for an attribute → the catalog's key."""
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


_QUESTION_OPENER = re.compile(
    r"\b(?:have|has|did|do)\s+you\b|\bever\s+(?:seen|watched|heard)\b|\bheard\s+of\b|"
    r"\b(?:what|how)\s+about\b|\bis\s+it\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?\n]")
_JOINERS = re.compile(r"(?:\s*(?:,|&|\band\b|\bor\b))*\s*$", re.IGNORECASE)
_QUESTION_TAIL = 4
"""A question mark ending the sentence makes a title asked about only if at most this many
words follow the title before it: "Is Alien (1979) a scary one?", not "I love Alien (1979)
and its sequels, know any like them?"."""


def asked(words: str, message: str, others: Sequence[str] = ()) -> bool:
    """Whether `words` are named in a question ("Have you seen Gone Girl?"), not stated as
    taste. On ReDial's validation turns a title the seeker asks about is the recommender's
    next suggestion 19% of the time (19 of 102), one stated 7.5% (101 of 1,342):
    benchmarks/bench_asked.py.
    The cue nearest before the title in its sentence decides (a taste stated, "I've seen X
    ... ?", or a question opener), else a question mark closely after it. Titles in
    `others` listed right before it ("A, B and C") share its cue; one named earlier ends
    its lead-in. Words not written as given (a typo the catalog look-up forgave) count as
    stated."""
    low = message.lower()
    needle = words.strip().lower()
    at = low.find(needle) if needle else -1
    if at < 0:
        return False
    # Longest first, so a list walk never hangs on a set's (per-process) order.
    titles = sorted({o.strip().lower() for o in others} - {needle, ""}, key=len, reverse=True)
    head = _list_head(low, at, titles)
    start = max((m.end() for m in _SENTENCE_END.finditer(low, 0, head)), default=0)
    for other in titles:
        before = low.rfind(other, start, head)
        start = max(start, before + len(other)) if before >= 0 else start
    cues = [(m.start(), False) for m in STATED.finditer(low, start, head)]
    cues += [(m.start(), True) for m in _QUESTION_OPENER.finditer(low, start, head)]
    if cues:
        return max(cues)[1]
    end = _SENTENCE_END.search(low, at + len(needle))
    return (end is not None and end.group() == "?"
            and len(low[at + len(needle):end.start()].split()) <= _QUESTION_TAIL)


def _list_head(low: str, at: int, titles: Sequence[str]) -> int:
    """Where the list of titles that ends with the one at `at` begins ("A, B and C");
    `titles` longest first, so the longest one ending there is taken."""
    while True:
        joined = _JOINERS.search(low, 0, at)
        cut = joined.start() if joined else at
        previous = next((t for t in titles if low.endswith(t, 0, cut)), None)
        if previous is None:
            return at
        at = cut - len(previous)


def attribute_keys(items: Sequence[Item]) -> list[str]:
    """The catalog's attribute keys (genres for MovieLens's genre flags too)."""
    keys: dict[str, None] = {}
    for item in items:
        for key, value in item.metadata.items():
            if key.startswith(GENRE_FLAG_PREFIX):
                keys["genres"] = None
            elif key not in NOT_ATTRIBUTES and isinstance(value, str):
                keys[key] = None
    return sorted(keys)


def item_year(item: Item) -> int | None:
    year = item.metadata.get("year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    found = _YEAR.findall(item.title)
    return int(found[-1]) if found else None


@dataclass(frozen=True)
class Limits:
    """The hard limits a plan's filter steps set, as one AttributeFilter, checked on
    every item shown."""

    filter: AttributeFilter = field(default_factory=AttributeFilter)

    def __add__(self, args: FilterArgs) -> Limits:
        f = self.filter
        year_min = max(filter(None, (f.year_min, args.year_min)), default=None)
        year_max = min(filter(None, (f.year_max, args.year_max)), default=None)
        if year_min is not None and year_max is not None and year_min > year_max:
            year_min, year_max = year_max, year_min
        return Limits(f.model_copy(update={
            "any_of": _merged(f.any_of, args.include), "none_of": _merged(f.none_of,
                                                                          args.exclude),
            "year_min": year_min, "year_max": year_max}))

    @property
    def empty(self) -> bool:
        return self.filter.empty

    def problems(self, item: Item) -> list[str]:
        """Why the item breaks these limits (empty: it keeps them)."""
        return violations(item, self.filter)


def _merged(old: dict[str, list[str]], conditions: Sequence[Condition]) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in old.items()}
    for c in conditions:
        key = canonical(c.attribute)
        out[key] = list(dict.fromkeys([*out.get(key, []), *c.values]))
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
        self.values: dict[str, dict[str, str]] = {
            key: vocabulary(items, key) for key in attribute_keys(items)}
        """Attribute key → normalised value → the catalog's spelling."""

    @classmethod
    def load(cls, store: CatalogStore) -> CatalogIndex:
        ids = store.collection.get(include=[])["ids"]
        return cls(list(store.get(ids).values()))

    def item_values(self, item_id: str) -> dict[str, list[str]]:
        item = self.items[item_id]
        return {key: list(got) for key in self.values if (got := values(item, key))}

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
        """The catalog's own spelling of the value of `attribute` these words name."""
        known = self.values.get(canonical(attribute))
        wanted = normalise(words)
        if not known or not wanted:
            return None
        if wanted in known:
            return known[wanted]
        hit = process.extractOne(wanted, list(known), scorer=fuzz.ratio,
                                 score_cutoff=VALUE_CUTOFF)
        return known[str(hit[0])] if hit else None

    def select(self, limits: Limits, within: Sequence[str] | None = None) -> list[str]:
        """The ids (of `within`, default the whole catalog) that keep every limit."""
        return filter_ids(self.items, limits.filter, within)
