"""The agent's tools: small classes over one turn's state, whose buffer holds item ids.

Every tool takes the state and its validated arguments and returns a new state (never
changes the old one: a tool abandoned at its time budget cannot touch the turn) and a
line saying what it did. Titles and attribute values the model passes are grounded: a
title must be written in the message and found in the catalog, a value must be the
catalog's and said in the message; anything else is dropped and counted ("ungrounded").
So nothing outside the catalog can enter the buffer, and no limit the user did not state
can narrow it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from recagent.agent.catalog import CatalogIndex, Limits, asked, canonical, item_year, said
from recagent.agent.types import Condition, FilterArgs, NoArgs, PlanRepair, TitlesArgs
from recagent.chat.parse import genre_words, is_pronoun, list_position
from recagent.chat.profile import merge, violations
from recagent.chat.profile_recommend import ProfileRecommender, ProfileResult
from recagent.types import ItemRef, PreferenceProfile, ProfileDelta, RankedItem, ShownItem
from retrieval.attributes import normalise

_YEAR_WRITTEN = re.compile(r"\(\s*\d{4}\s*\)")
"""A title's year as ReDial and MovieLens write it: "The Comedy (2012)"."""
SIMILAR_N = 100
"""How many items similar_to keeps in the buffer."""
FACTS_N = 5


@dataclass(frozen=True)
class TurnState:
    """One turn's working state. `buffer` None: not narrowed yet (the whole catalog)."""

    message: str | None
    """The user's words that titles and values must occur in; None: not checked (a
    user's own agent calls the tools; the catalog still grounds every argument)."""
    profile: PreferenceProfile
    shown: tuple[ShownItem, ...]
    k: int
    buffer: tuple[str, ...] | None = None
    ordered: bool = False
    """The buffer is ranked already (similar_to), not a set (filter)."""
    seeds: tuple[str, ...] = ()
    """Items the user named in this turn, found in the catalog."""
    asked: tuple[str, ...] = ()
    """The seeds named in a question ("Have you seen X?"): like-for-like seeds this turn,
    never recorded as liked (so they cannot steer later turns), and shown first when they
    keep every limit (the question is about them)."""
    limits: Limits = field(default_factory=Limits)
    facts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    result: ProfileResult | None = None
    explained: bool = False
    repairs: tuple[PlanRepair, ...] = ()

    @property
    def items(self) -> list[RankedItem]:
        return self.result.items if self.result else []

    def dropped(self, step: int, detail: str) -> TurnState:
        repair = PlanRepair(kind="ungrounded", step=step, detail=detail)
        return replace(self, repairs=(*self.repairs, repair))


class Tool(Protocol):
    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        ...


def _titles(index: CatalogIndex, state: TurnState, titles: Sequence[str], step: int
            ) -> tuple[TurnState, list[str]]:
    """The catalog ids of titles said in the message ('the second one' included)."""
    found: list[str] = []
    for title in titles:
        position = list_position(title, len(state.shown))
        if position is not None:
            found.append(state.shown[position - 1].item_id)
            continue
        if is_pronoun(title) and state.shown:
            found.append(state.shown[0].item_id)
            continue
        if not _said(title, state):
            state = state.dropped(step, f"title {title!r} is not in the message")
            continue
        if index.value("genres", title) is not None and not _YEAR_WRITTEN.search(title):
            state = state.dropped(step, f"title {title!r} is a genre (a film so named needs "
                                        "its year)")
            continue
        item_id = index.find_title(title)
        if item_id is None:
            state = state.dropped(step, f"title {title!r} is not in the catalog")
        elif item_id not in found:
            found.append(item_id)
    return state, found


class FindTitles:
    """Titles the user named → catalog ids (the turn's seeds)."""

    def __init__(self, index: CatalogIndex) -> None:
        self.index = index

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, TitlesArgs)
        found: list[str] = []
        questions: list[str] = []
        for title in args.titles:
            state, ids = _titles(self.index, state, [title], step)
            found += ids
            if state.message is not None and asked(title, state.message, args.titles):
                questions += ids
        seeds = tuple(dict.fromkeys([*state.seeds, *found]))
        names = [self.index.items[i].title for i in dict.fromkeys(found)]
        state = replace(state, seeds=seeds, asked=tuple(dict.fromkeys([*state.asked, *questions])))
        return state, f"found {names or 'nothing'}" + (f", {len(questions)} asked about"
                                                      if questions else "")


class Facts:
    """The attributes of named items (else the seeds, else the buffer's first few)."""

    def __init__(self, index: CatalogIndex) -> None:
        self.index = index

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, TitlesArgs)
        state, ids = _titles(self.index, state, args.titles, step)
        ids = ids or list(state.seeds) or list(state.buffer or ())[:FACTS_N]
        facts = dict(state.facts)
        for item_id in ids[:FACTS_N]:
            item = self.index.items[item_id]
            got = self.index.item_values(item_id)
            year = item_year(item)
            facts[item_id] = {**got, **({"year": [str(year)]} if year else {})}
        return replace(state, facts=facts), f"facts of {len(ids[:FACTS_N])} item(s)"


class Filter:
    """A hard filter over attributes (never titles): the buffer, or the catalog, narrowed
    to the items that keep every limit set so far."""

    def __init__(self, index: CatalogIndex, genres: Sequence[str]) -> None:
        self.index = index
        self.lexicon = genre_words(genres)

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, FilterArgs)
        include, state = self._ground(state, args.include, step)
        exclude, state = self._ground(state, args.exclude, step)
        years: dict[str, int | None] = {}
        for name in ("year_min", "year_max"):
            year = getattr(args, name)
            if year is not None and state.message is not None \
                    and not _year_said(year, state.message):
                state = state.dropped(step, f"{name} {year} is not written in the message")
                year = None
            years[name] = year
        grounded = FilterArgs(include=include, exclude=exclude, **years)
        if grounded == FilterArgs():
            return state, "no limit left to apply"
        limits = state.limits + grounded
        named = state.profile.excluded_ids
        kept = [i for i in self.index.select(limits, state.buffer) if i not in named]
        return (replace(state, limits=limits, buffer=tuple(kept)),
                f"{len(kept)} item(s) keep {_describe(grounded)}")

    def _ground(self, state: TurnState, conditions: Sequence[Condition], step: int
                ) -> tuple[list[Condition], TurnState]:
        kept: list[Condition] = []
        for c in conditions:
            attribute = canonical(c.attribute)
            values: list[str] = []
            for v in c.values:
                value = self.index.value(attribute, v)
                if value is None:
                    state = state.dropped(step, f"{attribute} {v!r} is not in the catalog")
                elif not (_said(v, state) or self._genre_said(attribute, value, state)):
                    state = state.dropped(step, f"{attribute} {v!r} is not in the message")
                elif value not in values:
                    values.append(value)
            if values:
                kept.append(Condition(attribute=attribute, values=values))
        return kept, state

    def _genre_said(self, attribute: str, value: str, state: TurnState) -> bool:
        if attribute != "genres":
            return False
        return any(normalise(genre) == normalise(value) and _said(word, state)
                   for word, genre in self.lexicon.items())


class SimilarTo:
    """Items like named ones (else the seeds, else the liked items; never ones the user
    disliked or only saw), found the way the product finds them for a profile that likes
    them. Over the catalog that is recommend's own path once the seeds are liked, so the
    buffer stays the catalog; only seeds asked about, which are never liked, get their
    candidates here. Over a narrowed buffer: fused retrieval and text closeness in turns."""

    def __init__(self, index: CatalogIndex, engine: ProfileRecommender) -> None:
        self.index = index
        self.engine = engine

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, TitlesArgs)
        state, ids = _titles(self.index, state, args.titles, step)
        unwanted = {r.item_id for r in (*state.profile.disliked, *state.profile.seen)}
        ids = [i for i in ids if i not in unwanted]
        seeds = ids or [i for i in state.seeds if i not in unwanted] or [
            r.item_id for r in state.profile.liked]
        if not seeds:
            return state, "no item to be similar to"
        state = replace(state, seeds=tuple(dict.fromkeys([*state.seeds, *ids])))
        names = [self.index.items[i].title for i in seeds]
        if state.buffer is None and not set(seeds) & set(state.asked):
            return state, f"like {names}: recommend ranks the product's candidates for them"
        if state.buffer is None:
            liking = with_seeds(state.profile, seeds, self.index)
            kept = [c.item.id for c in self.engine.candidates(liking, SIMILAR_N)]
        else:
            kept = self.engine.similar(seeds, state.buffer, SIMILAR_N,
                                       exclude=state.profile.excluded_ids)
        state = replace(state, buffer=tuple(kept), ordered=True)
        return state, f"{len(kept)} item(s) like {names}"


class Recommend:
    """The product's ranked list under the session profile (with the seeds as liked
    items), over the buffer when a step narrowed it, else the product's own retrieval."""

    def __init__(self, index: CatalogIndex, engine: ProfileRecommender) -> None:
        self.index = index
        self.engine = engine

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, NoArgs)
        liked = [i for i in state.seeds if i not in state.asked]
        profile = with_seeds(state.profile, liked, self.index)
        front = self._keeping(profile, state.limits, state.asked)[:state.k]
        result = self._ranked(state, profile, state.k - len(front), exclude=front)
        if front:
            first = self._ranked(replace(state, buffer=tuple(front), ordered=True), profile,
                                 len(front), exclude=[])
            result = ProfileResult(first.items + result.items, result.trace or first.trace,
                                   first.candidates + result.candidates,
                                   first.notes + result.notes)
        state = replace(state, profile=profile, result=result)
        return state, f"{len(result.items)} item(s) ranked" + (
            f", {len(front)} asked about first" if front else "")

    def _keeping(self, profile: PreferenceProfile, limits: Limits,
                 ids: Sequence[str]) -> list[str]:
        """The ids that the profile does not name and that keep every limit."""
        return [i for i in ids if i not in profile.excluded_ids
                and not violations(self.index.items[i], profile)
                and not limits.problems(self.index.items[i])]

    def _ranked(self, state: TurnState, profile: PreferenceProfile, k: int, *,
                exclude: Sequence[str]) -> ProfileResult:
        """The product's k best under the profile, `exclude` aside: over the buffer when a
        step narrowed it, else its own candidates."""
        if k <= 0:
            return ProfileResult([], None, [])
        n = max(k, self.engine.recommender.n_candidates)
        if state.buffer is None:
            candidates = [c for c in self.engine.candidates(profile, n + len(exclude))
                          if c.item.id not in exclude][:n]
        else:
            keep = [i for i in self._keeping(profile, state.limits, state.buffer)
                    if i not in exclude]
            candidates = self.engine.candidates_within(profile, keep, n,
                                                       keep_order=state.ordered)
        return self.engine.rank(profile, k, candidates, limits=state.limits.problems)


class Explain:
    """The product's checked explanations of the ranked items, shown in the reply."""

    def __call__(self, state: TurnState, args: object, step: int) -> tuple[TurnState, str]:
        assert isinstance(args, NoArgs)
        return replace(state, explained=True), f"{len(state.items)} explanation(s)"


def with_seeds(profile: PreferenceProfile, seeds: Sequence[str],
               index: CatalogIndex) -> PreferenceProfile:
    """The profile with the turn's named items as liked ones, unless the user already
    said they disliked or saw them."""
    known = {r.item_id for r in (*profile.liked, *profile.disliked, *profile.seen)}
    refs = [ItemRef(item_id=i, title=index.items[i].title, said=index.items[i].title[:200],
                    how="title") for i in seeds if i not in known]
    return merge(profile, ProfileDelta(), liked=refs) if refs else profile


def _said(words: str, state: TurnState) -> bool:
    return state.message is None or said(words, state.message)


def _year_said(year: int, message: str) -> bool:
    """Written as a limit: a title's own year ('Heat (1995)') does not count (measured: a
    plan's 1996 limit, grounded by 'Chain Reaction (1996)', hid the target)."""
    words = _YEAR_WRITTEN.sub(" ", message)
    return str(year) in words or f"{year % 100:02d}s" in words.lower()


def _describe(args: FilterArgs) -> str:
    parts = [f"{c.attribute} {' or '.join(c.values)}" for c in args.include]
    parts += [f"no {c.attribute} {', '.join(c.values)}" for c in args.exclude]
    if args.year_min is not None:
        parts.append(f"from {args.year_min}")
    if args.year_max is not None:
        parts.append(f"up to {args.year_max}")
    return "; ".join(parts)
