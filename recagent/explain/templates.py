"""Explanations written from the evidence alone: when there is no LLM, or its sentence failed.

A sentence cites the user's own liked item and the strongest fact that ties it to the
recommended item ("Because you liked Star Wars (1977): 62% of people who liked it also
liked Return of the Jedi (1983); both share Action and Sci-Fi."), always names the item
itself (so two items of a list never get the same sentence), and never says more than the
evidence: no genre it does not share, no title outside the item and the history, no
claim that the user has seen it. The opening rotates with the item's position, so a
list does not read as ten copies of one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from recagent.types import Evidence, HistoryLink

CONTENT_SOURCES = ("semantic", "profile")
"""Sources that find items by their text's embedding."""
MAX_GENRES = 3

_ARTICLE_AT_END = re.compile(
    r"^(?P<title>.*?),\s*(?P<article>The|A|An|Les|La|Le|L'|Il|El|Der|Die|Das)"
    r"(?P<year>\s*\(\d{4}\))?$")


def display_title(title: str) -> str:
    """'Usual Suspects, The (1995)' → 'The Usual Suspects (1995)'."""
    match = _ARTICLE_AT_END.match(title.strip())
    if not match:
        return title.strip()
    article = match.group("article")
    joiner = "" if article.endswith("'") else " "
    return f"{article}{joiner}{match.group('title')}{match.group('year') or ''}"


def _genres(names: list[str]) -> str:
    names = names[:MAX_GENRES]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _era(link: HistoryLink, evidence: Evidence) -> str | None:
    if evidence.year is None:
        return None
    if link.same_year:
        return str(evidence.year)
    if link.same_decade:
        return f"the {evidence.year - evidence.year % 10}s"
    return None


def _facts(link: HistoryLink, evidence: Evidence, item: str) -> list[str]:
    """What ties `link` to the item, strongest first (at most three): the first names the
    item, the others are short tails; "it" is the history item."""
    pairs: list[tuple[str, str | None]] = []  # (naming the item, as a tail)
    content = any(s in evidence.sources for s in CONTENT_SOURCES) or not evidence.sources
    if link.strength is not None:
        pairs.append((f"{round(link.strength * 100)}% of people who liked it also liked "
                      f"{item}", None))
    if link.nearest and content:
        pairs.append((f"{item} is close in content to it", "the two are close in content"))
    elif link.nearest:
        pairs.append((f"{item} is often liked by the same people",
                      "often liked by the same people"))
    if link.shared_genres:
        genres = _genres(link.shared_genres)
        pairs.append((f"{item} shares {genres} with it", f"both share {genres}"))
    era = _era(link, evidence)
    if era is not None:
        pairs.append((f"{item} is also from {era}", f"both from {era}"))
    if not pairs:
        return []
    return [pairs[0][0], *[tail for _, tail in pairs[1:] if tail is not None][:2]]


_LEADS: list[Callable[[str], str]] = [
    lambda h: f"Because you liked {h}",
    lambda h: f"Since you liked {h}",
    lambda h: f"For fans of {h}, like you",
    lambda h: f"Picked for your taste for {h}",
]


def _source_only(evidence: Evidence, item: str) -> list[str]:
    """Sentences from the retrieval sources alone, when no liked item ties to the item."""
    out: list[str] = []
    sources = evidence.sources
    if any(s in sources for s in CONTENT_SOURCES):
        out += [f"{item} is a close content match for the titles you liked.",
                f"A close content match for the titles you liked: {item}."]
    if "cooccurrence" in sources:
        out += [f"{item} is often liked by people whose likes overlap with yours.",
                f"People whose likes overlap with yours often liked {item}."]
    if "popularity" in sources:
        if evidence.popularity:
            out.append(f"{item} is one of the most liked titles: {evidence.popularity} "
                       "people liked it.")
        out.append(f"{item} is one of the most liked titles overall.")
    return out


def sentences(evidence: Evidence, position: int = 0) -> list[str]:
    """Explanations for this evidence, best first; the opening rotates with `position`.
    The last one always differs from every other item's (it names the catalog id)."""
    item = display_title(evidence.title)
    out: list[str] = []
    links = evidence.because
    if links:
        lead, second = links[0], links[1] if len(links) > 1 else None
        facts = _facts(lead, evidence, item)
        if facts:
            extra = ""
            if second is not None and second.shared_genres:
                extra = (f"; it shares {_genres(second.shared_genres)} with "
                         f"{display_title(second.title)}, which you also liked")
            history = display_title(lead.title)
            for n in range(len(_LEADS)):
                opening = _LEADS[(position + n) % len(_LEADS)](history)
                out.append(f"{opening}: {'; '.join(facts)}{extra}.")
                if extra:
                    out.append(f"{opening}: {'; '.join(facts)}.")
    rotated = _source_only(evidence, item)
    if rotated:
        shift = position % len(rotated)
        out += rotated[shift:] + rotated[:shift]
    out.append(f"{item} was picked for you from the catalog.")
    out.append(f"{item} (catalog id {evidence.item_id}) is another pick for you.")
    return list(dict.fromkeys(out))
