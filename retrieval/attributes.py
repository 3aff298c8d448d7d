"""List-valued item attributes (genres, director, star, ...) and the hard filter over them.

Chroma metadata holds only scalars, so a list attribute is stored as one string joined by
`LIST_SEP` ("Drama|Romance"); `encode_list` writes it and `values` reads it back: the only
two places that know the encoding. A catalog loader refuses list elements that contain
the separator, so the round trip is exact.

The filter is pure and works on Items of any catalog (not only movies): every key is
matched case- and accent-insensitively on whole values ("christopher nolan" finds
"Christopher Nolan", "Nolan" does not: resolve names with `vocabulary` first). It is
what a chat gate or an agent's filter tool calls, and what it gives back are reasons,
so a caller can say why an item was left out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

from pydantic import Field, model_validator

from retrieval.types import Frozen, Item, MetadataValue

LIST_SEP = "|"
"""Joins the elements of a list attribute in Chroma metadata."""
GENRE_FLAG_PREFIX = "genre_"
"""MovieLens-style boolean genre keys (`genre_Comedy: True`); read as the `genres` list."""
YEAR_KEY = "year"


def encode_list(values: Sequence[MetadataValue]) -> str | None:
    """A list attribute as stored, or None if an element holds `LIST_SEP` (cannot round-trip)."""
    shown = [str(v).strip() for v in values]
    if any(LIST_SEP in v for v in shown):
        return None
    return LIST_SEP.join(v for v in shown if v)


def values(item: Item, key: str) -> tuple[str, ...]:
    """The item's values of attribute `key`: a list attribute decoded, a scalar as one value,
    nothing if absent. `genres` also reads MovieLens-style `genre_<Name>: True` flags."""
    raw = item.metadata.get(key)
    found: list[str] = []
    if isinstance(raw, str):
        found = [v.strip() for v in raw.split(LIST_SEP) if v.strip()]
    elif raw is not None:
        found = [str(raw)]
    if key == "genres":
        found += [k[len(GENRE_FLAG_PREFIX):] for k, v in item.metadata.items()
                  if k.startswith(GENRE_FLAG_PREFIX) and v is True]
    return tuple(dict.fromkeys(found))


def normalise(value: str) -> str:
    """The form values are compared in: no accents, case-folded, single spaces, and '-'
    read as a space ('Sci-Fi' = 'sci fi')."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode() or value
    return re.sub(r"[\s\-_]+", " ", text.casefold()).strip()


def vocabulary(items: Iterable[Item], key: str) -> dict[str, str]:
    """Every value of `key` in the catalog, normalised form → the first spelling seen; what
    a caller matches user words against before building a filter."""
    vocab: dict[str, str] = {}
    for item in items:
        for v in values(item, key):
            vocab.setdefault(normalise(v), v)
    return vocab


class AttributeFilter(Frozen):
    """Hard constraints on items. All given parts must hold (an empty filter passes all).

    - `any_of[key]`: the item has at least one of these values of `key`;
    - `all_of[key]`: it has every one of them;
    - `none_of[key]`: it has none of them; an item without the attribute at all fails
      unless `unknown_passes_none_of` (it cannot be shown not to have it);
    - `year_min`/`year_max`: inclusive, on the integer `year` metadata (an item without a
      year fails when either is given);
    - `exclude_ids`: ids never to pass (seen, already named, disliked).
    """

    any_of: dict[str, list[str]] = Field(default_factory=dict)
    all_of: dict[str, list[str]] = Field(default_factory=dict)
    none_of: dict[str, list[str]] = Field(default_factory=dict)
    year_min: Annotated[int, Field(ge=0, le=9999)] | None = None
    year_max: Annotated[int, Field(ge=0, le=9999)] | None = None
    exclude_ids: frozenset[str] = frozenset()
    unknown_passes_none_of: bool = False

    @model_validator(mode="after")
    def _sane(self) -> AttributeFilter:
        if self.year_min is not None and self.year_max is not None \
                and self.year_min > self.year_max:
            raise ValueError(f"year_min {self.year_min} is after year_max {self.year_max}")
        for part in (self.any_of, self.all_of, self.none_of):
            for key, wanted in part.items():
                if not key or not wanted or not all(w.strip() for w in wanted):
                    raise ValueError(f"attribute {key!r}: give a key and non-empty values")
        return self

    @property
    def empty(self) -> bool:
        return not (self.any_of or self.all_of or self.none_of or self.exclude_ids
                    or self.year_min is not None or self.year_max is not None)


def violations(item: Item, flt: AttributeFilter) -> list[str]:
    """Why `item` fails `flt`, one short reason per broken constraint (empty: it passes)."""
    problems: list[str] = []
    if item.id in flt.exclude_ids:
        problems.append("is excluded by id")
    for key, wanted in flt.any_of.items():
        have = {normalise(v) for v in values(item, key)}
        if not have & {normalise(w) for w in wanted}:
            problems.append(f"has no {key} among {', '.join(wanted)}")
    for key, wanted in flt.all_of.items():
        have = {normalise(v) for v in values(item, key)}
        missing = [w for w in wanted if normalise(w) not in have]
        if missing:
            problems.append(f"lacks {key} {', '.join(missing)}")
    for key, wanted in flt.none_of.items():
        have = {normalise(v) for v in values(item, key)}
        if not have and not flt.unknown_passes_none_of:
            problems.append(f"has no known {key}")
            continue
        hit = [w for w in wanted if normalise(w) in have]
        if hit:
            problems.append(f"has the excluded {key} {', '.join(hit)}")
    return problems + year_violations(item, flt.year_min, flt.year_max)


def year_violations(item: Item, year_min: int | None, year_max: int | None) -> list[str]:
    """Why `item` is outside the inclusive year range (an item without a year cannot be
    shown to be inside it); shared by this filter and the chat profile's limits."""
    if year_min is None and year_max is None:
        return []
    year = item.metadata.get(YEAR_KEY)
    if not isinstance(year, int) or isinstance(year, bool):
        return ["has no known year"]
    if year_min is not None and year < year_min:
        return [f"is from {year}, before {year_min}"]
    if year_max is not None and year > year_max:
        return [f"is from {year}, after {year_max}"]
    return []


def passes(item: Item, flt: AttributeFilter) -> bool:
    return not violations(item, flt)


def filter_ids(
    items: Mapping[str, Item] | Iterable[Item], flt: AttributeFilter,
    ids: Iterable[str] | None = None,
) -> list[str]:
    """The ids that pass `flt`, in the order of `ids` (default: the catalog's order).

    `items` is the catalog (a mapping by id, or any iterable of Items); an id that is not
    in it never passes, so the result is always inside the catalog."""
    by_id = items if isinstance(items, Mapping) else {i.id: i for i in items}
    order = list(by_id) if ids is None else list(dict.fromkeys(ids))
    return [i for i in order if i in by_id and passes(by_id[i], flt)]
