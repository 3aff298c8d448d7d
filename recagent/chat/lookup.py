"""Find what a user names in the catalog: genre vocabulary and titles.

A title is looked up by retrieval (the embedded words against the stored item texts)
and then accepted only on a lexical match with the item's title: nearest neighbours
alone would happily turn "movies from the 80s" into Back to the Future.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

from recagent.chat.parse import is_pronoun, list_position
from recagent.types import Item, ItemRef, ShownItem
from retrieval.store import CatalogStore

GENRE_PREFIX = "genre_"
PLACEHOLDER_GENRES = frozenset({"unknown", "(no genres listed)"})
"""MovieLens marks missing genres with these; they are not something to ask for."""
FUZZY_MIN = 0.85
"""difflib ratio between normalised titles that counts as a typo, not another film."""

_YEAR = re.compile(r"\(?\b(1[89]\d\d|20\d\d)\b\)?\s*(?:\((?:v|tv)\)\s*)?$")
"""A trailing year, and MovieLens's video / TV marker after it ('(1995) (V)')."""
_BRACKETED = re.compile(r"\([^)]*\)")
_BRACKETED_TEXT = re.compile(r"\(([^)]+)\)")
_AKA = re.compile(r"^\s*a\.?k\.?a\.?\s+", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:,|\band\b|&|\bor\b|\bplus\b)\s*", re.IGNORECASE)
_ARTICLE_AT_END = re.compile(r"^(.*),\s*(the|a|an|les|la|le|l'|il|el|der|die|das)$")
_ARTICLE_AT_START = re.compile(r"^(?:the|a|an)\s+")


def catalog_genres(store: CatalogStore, sample: int = 50) -> list[str]:
    """The genre names the catalog itself uses, from its boolean `genre_<Name>` keys."""
    got = store.collection.get(limit=sample, include=["metadatas"])
    names: dict[str, None] = {}
    for metadata in got["metadatas"] or []:
        for key in metadata or {}:
            name = key[len(GENRE_PREFIX):]
            if key.startswith(GENRE_PREFIX) and name and name.lower() not in PLACEHOLDER_GENRES:
                names[name] = None
    return sorted(names)


def normalise_title(title: str) -> str:
    """'Usual Suspects, The (1995)' and 'the usual suspects' → 'usual suspects'."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = _YEAR.sub("", text.strip()).strip() or text.strip()  # '2001' is a title too
    text = _ARTICLE_AT_END.sub(r"\2 \1", text)
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return _ARTICLE_AT_START.sub("", text)


class TitleResolver:
    """User words → catalog items: list references, catalog ids, then titles."""

    def __init__(self, store: CatalogStore, *, shortlist: int = 10) -> None:
        self.store = store
        self.shortlist = shortlist

    def resolve(
        self,
        phrase: str,
        *,
        shown: Sequence[ShownItem] = (),
        last_ref: ItemRef | None = None,
        allow_ids: bool = False,
    ) -> tuple[list[ItemRef], list[str]]:
        """(items found, parts not found) for a phrase such as 'Alien and Heat'.

        The whole phrase is tried first, so 'Sense and Sensibility' stays one film."""
        phrase = phrase.strip()
        if not phrase:
            return [], []
        whole = self.lookup(phrase, shown=shown, last_ref=last_ref, allow_ids=allow_ids)
        if whole is not None:
            return [whole], []
        found: list[ItemRef] = []
        missing: list[str] = []
        parts = [p for p in _SPLIT.split(phrase) if p.strip()]
        if len(parts) < 2:
            return [], [phrase]
        for part in parts:
            ref = self.lookup(part, shown=shown, last_ref=last_ref, allow_ids=allow_ids)
            if ref is None:
                missing.append(part.strip())
            else:
                found.append(ref)
        return found, missing

    def lookup(
        self,
        words: str,
        *,
        shown: Sequence[ShownItem] = (),
        last_ref: ItemRef | None = None,
        allow_ids: bool = False,
    ) -> ItemRef | None:
        """One item for these words, or None when nothing matches closely enough."""
        said = words.strip()[:200]
        position = list_position(said, len(shown))
        if position is not None:
            item = shown[position - 1]
            return ItemRef(item_id=item.item_id, title=item.title, said=said, how="list")
        if is_pronoun(said):
            if last_ref is not None:
                return last_ref.model_copy(update={"said": said, "how": "list"})
            if shown:
                return ItemRef(item_id=shown[0].item_id, title=shown[0].title, said=said,
                               how="list")
            return None
        if allow_ids:
            got = self.store.get([said])
            if said in got:
                return ItemRef(item_id=said, title=got[said].title, said=said, how="id")
        return self._by_title(said)

    def _by_title(self, said: str) -> ItemRef | None:
        wanted = normalise_title(said)
        if not wanted:
            return None
        year = _YEAR.search(said.strip())
        vector = self.store.embedder.embed([said])[0]
        hits = [item for item, _, _ in self.store.query(vector, self.shortlist)]
        best = _pick(hits, wanted, int(year.group(1)) if year else None)
        if best is None:
            return None
        return ItemRef(item_id=best.id, title=best.title, said=said, how="title")


def _names(item: Item) -> set[str]:
    """The title as written, without its bracketed parts, and each bracketed alias:
    'Seven (Se7en) (1995)' answers to 'seven se7en', 'seven' and 'se7en'."""
    bare = item.metadata.get("title")
    titles = [item.title, bare] if isinstance(bare, str) else [item.title]
    names: set[str] = set()
    for title in titles:
        names.add(normalise_title(title))
        names.add(normalise_title(_BRACKETED.sub(" ", title)))
        aliases = [a for a in _BRACKETED_TEXT.findall(title) if not _YEAR.fullmatch(f"({a})")]
        names.update(normalise_title(_AKA.sub("", alias)) for alias in aliases)
    return names - {""}


def _pick(hits: Sequence[Item], wanted: str, year: int | None) -> Item | None:
    """Exact title (the given year first), then 'Terminator 2' → 'Terminator 2: …', then typos."""
    exact = [h for h in hits if wanted in _names(h)]
    if exact:
        same_year = [h for h in exact if year is not None and h.metadata.get("year") == year]
        return (same_year or exact)[0]
    if len(wanted) >= 4:
        for h in hits:
            if any(n.startswith(wanted + " ") for n in _names(h)):
                return h
    scored = [(max(difflib.SequenceMatcher(None, wanted, n).ratio() for n in _names(h)), h)
              for h in hits if _names(h)]
    good = [(score, h) for score, h in scored if score >= FUZZY_MIN]
    return max(good, key=lambda sh: sh[0])[1] if good else None
