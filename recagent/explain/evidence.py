"""The facts behind a recommendation: what an explanation may say, gathered before it is written.

For each returned item: the user's liked items that brought it (retrieval's nearest liked
item, the liked items most often liked together with it, the ones sharing its genres),
with strength when interaction statistics are given ("62% of people who liked Star Wars
also liked it"), the genres and era it shares with them, and the retrieval sources that
proposed it. Nothing here is worded; `templates` and `wording` turn it into a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recagent.chat.lookup import GENRE_PREFIX, PLACEHOLDER_GENRES
from recagent.types import Candidate, Evidence, HistoryLink, Interaction, Item

FUSED_SOURCE = "rrf"
"""retrieval.hybrid's fused score: not a source of its own."""
MIN_SUPPORT = 5
"""Fewest people behind a history item before a share of them is quoted."""
MIN_CO_LIKED = 2
"""Fewest people who liked both items before the share is quoted."""
MAX_LINKS = 2
"""History items cited per recommended item."""

_YEAR = re.compile(r"\((1[89]\d\d|20\d\d)\)\s*$")


def item_genres(item: Item) -> list[str]:
    """The item's genres: its `genre_<Name>: True` keys (MovieLens), else its 'genres'
    field joined by '|' (other catalogs); placeholders such as 'unknown' left out."""
    flagged = [key[len(GENRE_PREFIX):] for key, value in item.metadata.items()
               if key.startswith(GENRE_PREFIX) and value is True]
    if not flagged:
        joined = item.metadata.get("genres")
        flagged = str(joined).split("|") if isinstance(joined, str) else []
    return [g.strip() for g in flagged
            if g.strip() and g.strip().lower() not in PLACEHOLDER_GENRES]


def genre_vocabulary(items: Iterable[Item]) -> set[str]:
    """Every genre name these items' metadata knows of (a MovieLens item lists all of them,
    True or False), placeholders left out."""
    names: set[str] = set()
    for item in items:
        names.update(key[len(GENRE_PREFIX):] for key in item.metadata
                     if key.startswith(GENRE_PREFIX))
        names.update(item_genres(item))
    return {n for n in names if n and n.lower() not in PLACEHOLDER_GENRES}


def item_year(item: Item) -> int | None:
    """The 'year' metadata, else a '(1995)' at the end of the title."""
    year = item.metadata.get("year")
    if isinstance(year, int) and not isinstance(year, bool):
        return year
    if isinstance(year, str) and year.isdigit():
        return int(year)
    match = _YEAR.search(item.title)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class CoLikeTable:
    """Counts for some history items against some recommended items."""

    co_liked: np.ndarray
    """[history, item]: people with a positive interaction on both."""
    support: np.ndarray
    """[history]: people with a positive interaction on the history item."""
    popularity: np.ndarray
    """[item]: people with a positive interaction on the item."""
    users: int
    """People in the statistics (other than the excluded user)."""


class CoLikes:
    """Who liked what, from (user id, item id) positive pairs: a sparse user-by-item matrix
    whose column products count the people who liked two items. Give it positive
    interactions only (likes, ratings >= 4, bare views); repeated pairs count once."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        unique = list(dict.fromkeys(pairs))
        self.users = {u: n for n, u in enumerate(dict.fromkeys(u for u, _ in unique))}
        self.items = {i: n for n, i in enumerate(dict.fromkeys(i for _, i in unique))}
        rows = [self.users[u] for u, _ in unique]
        cols = [self.items[i] for _, i in unique]
        self.matrix = sp.csc_matrix(
            (np.ones(len(unique), dtype=np.int32), (rows, cols)),
            shape=(len(self.users), len(self.items)))
        self.counts = np.asarray(self.matrix.sum(axis=0)).ravel().astype(np.int64)

    def table(self, history: Sequence[str], items: Sequence[str],
              exclude_user: str | None = None) -> CoLikeTable:
        """Counts for every (history item, item) pair, leaving `exclude_user` (the user
        being explained to) out of them; items it does not know count 0."""
        co = np.zeros((len(history), len(items)), dtype=np.int64)
        support = np.zeros(len(history), dtype=np.int64)
        popularity = np.zeros(len(items), dtype=np.int64)
        h_known = [(n, self.items[h]) for n, h in enumerate(history) if h in self.items]
        i_known = [(n, self.items[i]) for n, i in enumerate(items) if i in self.items]
        user = self.users.get(exclude_user) if exclude_user is not None else None
        mine = (np.asarray(self.matrix[user].toarray()).ravel() if user is not None
                else np.zeros(len(self.items), dtype=np.int32))
        if i_known:
            i_rows, i_cols = (np.array(x) for x in zip(*i_known, strict=True))
            popularity[i_rows] = self.counts[i_cols] - mine[i_cols]
        if h_known:
            h_rows, h_cols = (np.array(x) for x in zip(*h_known, strict=True))
            support[h_rows] = self.counts[h_cols] - mine[h_cols]
        if h_known and i_known:
            block = (self.matrix[:, h_cols].T @ self.matrix[:, i_cols]).toarray()
            block = block - np.outer(mine[h_cols], mine[i_cols])
            co[np.ix_(h_rows, i_rows)] = block
        users = len(self.users) - (user is not None)
        return CoLikeTable(co_liked=co, support=support, popularity=popularity, users=users)


def _decade(year: int | None) -> int | None:
    return None if year is None else year - year % 10


def gather(
    chosen: Sequence[Candidate],
    history: Sequence[tuple[Interaction, Item]],
    *,
    stats: CoLikes | None = None,
    user_id: str | None = None,
    max_links: int = MAX_LINKS,
    min_support: int = MIN_SUPPORT,
) -> list[Evidence]:
    """The evidence for each chosen candidate, in order. Only liked history items (positive
    polarity) are cited: retrieval's nearest one first, then by lift (the co-liked share
    over the item's base rate, so a blockbuster is not tied to everything), shared genres,
    same decade, and the newest on a tie."""
    liked = [item for interaction, item in history if interaction.polarity > 0]
    table = stats.table([i.id for i in liked], [c.item.id for c in chosen], user_id) \
        if stats is not None else None
    liked_genres = [item_genres(i) for i in liked]
    liked_years = [item_year(i) for i in liked]
    out: list[Evidence] = []
    for col, candidate in enumerate(chosen):
        item = candidate.item
        genres, year = item_genres(item), item_year(item)
        base = (table.popularity[col] / table.users if table is not None and table.users
                else 0.0)
        links: list[tuple[tuple[int, float, int, int, int], HistoryLink]] = []
        for row, past in enumerate(liked):
            shared = [g for g in genres if g in liked_genres[row]]
            nearest = past.id == candidate.nearest_history_id
            co = support = None
            strength: float | None = None
            if table is not None:
                co, support = int(table.co_liked[row, col]), int(table.support[row])
                share = co / support if support else 0.0
                if support >= min_support and co >= MIN_CO_LIKED and share > base:
                    strength = round(share, 4)  # above the base rate: a reason to cite
            if strength is None and not nearest and not shared:
                continue  # nothing ties them: not a reason to cite it
            other = liked_years[row]
            link = HistoryLink(
                item_id=past.id, title=past.title, genres=liked_genres[row],
                shared_genres=shared, same_year=year is not None and year == other,
                same_decade=_decade(year) is not None and _decade(year) == _decade(other),
                nearest=nearest, co_liked=co, support=support, strength=strength)
            lift = (strength or 0.0) / base if base else (strength or 0.0)
            rank = (int(nearest), lift, len(shared), int(link.same_decade), row)
            links.append((rank, link))
        links.sort(key=lambda pair: pair[0], reverse=True)
        cited = [link for _, link in links[:max_links]]
        out.append(Evidence(
            item_id=item.id, title=item.title, year=year, genres=genres, because=cited,
            sources=[s for s in candidate.scores_by_source if s != FUSED_SOURCE],
            popularity=int(table.popularity[col]) if table is not None else None))
    return out
