"""The preference profile as hard constraints: merge updates, filter, and check items.

Everything here is pure. The same profile gives the Chroma `where` filter used at
retrieval and the per-item check applied to the final list, so a constraint holds
even if retrieval or a model misbehaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recagent.chat.lookup import GENRE_PREFIX
from recagent.types import Item, ItemRef, PreferenceProfile, ProfileDelta
from retrieval.attributes import year_violations

MAX_ITEMS = 30
"""Per list (liked, disliked, seen): the oldest entries drop out beyond this."""
MAX_WISHES = 5


def merge(
    profile: PreferenceProfile,
    delta: ProfileDelta,
    *,
    liked: Sequence[ItemRef] = (),
    disliked: Sequence[ItemRef] = (),
    seen: Sequence[ItemRef] = (),
) -> PreferenceProfile:
    """The profile after this update: the newest statement wins every conflict.

    `liked`/`disliked`/`seen` are the delta's titles already found in the catalog. A title
    one update both likes and dislikes ("loved X ... X I didn't like") counts as disliked:
    the safer reading, as for genres."""
    against = {r.item_id for r in disliked}
    liked = [r for r in liked if r.item_id not in against]
    like = _refs(profile.liked, liked, drop=disliked)
    dislike = _refs(profile.disliked, disliked, drop=liked)
    saw = _refs(profile.seen, seen, drop=())
    # Within one update, ruling a genre out beats asking for it: the safer reading.
    excluded = set(delta.exclude_genres)
    included = [g for g in delta.include_genres if g not in excluded]
    lifted = set(delta.allow_genres) | set(included)
    include = _ordered([g for g in profile.include_genres if g not in excluded], included)
    exclude = _ordered([g for g in profile.exclude_genres if g not in lifted],
                       delta.exclude_genres)
    year_min = None if delta.clear_years else profile.year_min
    year_max = None if delta.clear_years else profile.year_max
    if delta.year_min is not None:
        year_min = delta.year_min
        if year_max is not None and year_max < year_min and delta.year_max is None:
            year_max = None  # "after 2000" after "before 1990": the old limit goes
    if delta.year_max is not None:
        year_max = delta.year_max
        if year_min is not None and year_min > year_max and delta.year_min is None:
            year_min = None
    if year_min is not None and year_max is not None and year_min > year_max:
        year_min, year_max = year_max, year_min
    wishes = _ordered(profile.wishes, [w.strip()[:200] for w in delta.wishes if w.strip()])
    return PreferenceProfile(
        liked=like, disliked=dislike, seen=saw, include_genres=include, exclude_genres=exclude,
        year_min=year_min, year_max=year_max, wishes=wishes[-MAX_WISHES:],
    )


def where_filter(profile: PreferenceProfile) -> dict[str, Any] | None:
    """The Chroma metadata filter for the profile's genre and year limits."""
    clauses: list[dict[str, Any]] = [{f"{GENRE_PREFIX}{g}": False}
                                     for g in profile.exclude_genres]
    if len(profile.include_genres) == 1:
        clauses.append({f"{GENRE_PREFIX}{profile.include_genres[0]}": True})
    elif profile.include_genres:
        clauses.append({"$or": [{f"{GENRE_PREFIX}{g}": True} for g in profile.include_genres]})
    if profile.year_min is not None:
        clauses.append({"year": {"$gte": profile.year_min}})
    if profile.year_max is not None:
        clauses.append({"year": {"$lte": profile.year_max}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def violations(item: Item, profile: PreferenceProfile) -> list[str]:
    """Why this item may not be shown under the profile (empty: it may)."""
    problems: list[str] = []
    if item.id in profile.excluded_ids:
        problems.append("already named by the user")
    genres = _genres(item)
    for g in profile.exclude_genres:
        if genres.get(g, True):  # unknown counts as present: cannot prove it is not
            problems.append(f"has the ruled-out genre {g}")
    if profile.include_genres and not any(genres.get(g) for g in profile.include_genres):
        problems.append(f"has none of {', '.join(profile.include_genres)}")
    return problems + year_violations(item, profile.year_min, profile.year_max)


def describe(profile: PreferenceProfile) -> list[str]:
    """Short phrases for the limits in force, for replies and the CLI."""
    parts: list[str] = []
    if profile.include_genres:
        parts.append("only " + " or ".join(profile.include_genres))
    if profile.exclude_genres:
        parts.append("no " + ", ".join(profile.exclude_genres))
    if profile.year_min is not None and profile.year_max is not None:
        parts.append(f"{profile.year_min}\u2013{profile.year_max}")
    elif profile.year_min is not None:
        parts.append(f"from {profile.year_min} on")
    elif profile.year_max is not None:
        parts.append(f"up to {profile.year_max}")
    if profile.seen:
        parts.append(f"{len(profile.seen)} seen")
    return parts


def _genres(item: Item) -> dict[str, bool]:
    flags = {k[len(GENRE_PREFIX):]: bool(v) for k, v in item.metadata.items()
             if k.startswith(GENRE_PREFIX)}
    listed = item.metadata.get("genres")
    if isinstance(listed, str):
        for g in filter(None, listed.split("|")):
            flags.setdefault(g, True)
    return flags


def _refs(old: Sequence[ItemRef], new: Sequence[ItemRef], *, drop: Sequence[ItemRef]
          ) -> list[ItemRef]:
    gone = {r.item_id for r in drop} | {r.item_id for r in new}
    kept = [r for r in old if r.item_id not in gone]
    fresh = list({r.item_id: r for r in new}.values())
    return (kept + fresh)[-MAX_ITEMS:]


def _ordered(old: Sequence[str], new: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*old, *new]))
