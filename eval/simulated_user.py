"""A simulated user who knows a hidden target and never says its title.

The rules user opens with a few of its own liked items (never the target, nor an item
whose title contains the target's or is contained in it: a sequel gives the title away)
and one attribute of the target; every later turn it reacts to the list it was shown
("I've seen the first one", "not a fan of the second one": positions, never titles) and
reveals one more attribute, in this order: genre, decade, director, star, a plot keyword
(those the catalog has). A fragment that would state the title (a star called like the
film) is left out.

`LeakGuard` is what stands between an LLM-worded message and the system: a message whose
rapidfuzz partial_ratio to the title reaches the threshold (60) is replaced by the rules
user's own message for that turn (which states no title: tests check it over whole
catalogs). Leaks are counted; none reaches the system.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from retrieval.attributes import values
from retrieval.types import Item

LEAK_THRESHOLD = 60.0
_YEAR_END = re.compile(r"\s*\(\d{4}\)\s*$")
_ARTICLE_AT_END = re.compile(r"^(.*),\s*(the|a|an|les|la|le|il|el|der|die|das)$", re.IGNORECASE)
PLACEHOLDER_GENRES = {"unknown", "(no genres listed)"}
_STOP_WORDS = (
    "a about above after again against all also among an and any are as"
    " at be because been before being between both but by can could did do"
    " does doing down during each even ever every few for from further had has"
    " have having he her here hers him his how however into its itself just"
    " last later like made make many more most much must never new next not"
    " now off once one only other otherwise out over own same she should since"
    " some still such than that their them then there these they this those through"
    " together too under until upon very was were what when where which while who"
    " whom whose why will with within without would year years young your life man"
    " woman world family film story find finds must help becomes directed starring"
    " written genres"
)
_STOP = frozenset(_STOP_WORDS.split())


def normalise(text: str) -> str:
    """Lower case ASCII words; 'Usual Suspects, The (1995)' → 'the usual suspects'."""
    text = _YEAR_END.sub("", text.strip())
    text = _ARTICLE_AT_END.sub(r"\2 \1", text.strip())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def spoken(title: str) -> str:
    """A title as a person types it: 'Usual Suspects, The (1995)' → 'The Usual Suspects (1995)'."""
    year = _YEAR_END.search(title)
    bare = _YEAR_END.sub("", title).strip()
    m = re.match(r"^(.*),\s*(The|A|An)$", bare)
    bare = f"{m.group(2)} {m.group(1)}" if m else bare
    return f"{bare} {year.group(0).strip()}" if year else bare


def states_title(message: str, title: str) -> bool:
    """Whether the message says the title: its words, in order, as whole words."""
    said, name = f" {normalise(message)} ", normalise(title)
    return bool(name) and f" {name} " in said


def gives_away(other: Item, target: Item) -> bool:
    """Naming `other` would give the target away: one title contains the other's words."""
    a, b = normalise(other.title), normalise(target.title)
    return bool(a and b) and (f" {b} " in f" {a} " or f" {a} " in f" {b} ")


def decade(item: Item) -> int | None:
    year = item.metadata.get("year")
    return year // 10 * 10 if isinstance(year, int) and not isinstance(year, bool) else None


def keyword(item: Item, rng: random.Random) -> str | None:
    """A content word of the item's plot (its text without title, genres and people)."""
    taboo = set(normalise(item.title).split())
    for key in ("genres", "director", "star", "writer"):
        for v in values(item, key):
            taboo |= set(normalise(v).split())
    words = [w for w in re.findall(r"[A-Za-z]+", item.text) if len(w) >= 5]
    words = [w.lower() for w in words if w.lower() not in _STOP and w.lower() not in taboo
             and not w[0].isupper()]
    return rng.choice(sorted(set(words))) if words else None


def reveals(target: Item, rng: random.Random) -> list[str]:
    """The attribute sentences, one per turn, in the order the user reveals them."""
    out: list[str] = []
    genres = [g for g in values(target, "genres") if g.lower() not in PLACEHOLDER_GENRES]
    if genres:
        out.append(f"I'm in the mood for {rng.choice(genres).lower()}.")
    if (d := decade(target)) is not None:
        out.append(f"Something from the {d}s.")
    for key, phrase in (("director", "Directed by {}, ideally."), ("star", "With {} in it.")):
        people = list(values(target, key))
        if people:
            out.append(phrase.format(people[0]))
    if (word := keyword(target, rng)) is not None:
        out.append(f"Something about {word}.")
    return [r for r in out if not states_title(r, target.title)]


REACTIONS = ("I've seen the first one.", "Not a fan of the second one.",
             "I've seen the third one.", "Not a fan of the first one.")


@dataclass
class RulesUser:
    """The scripted user of one episode."""

    target: Item
    opening: list[Item]
    rng: random.Random
    attributes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.opening = [i for i in self.opening if not gives_away(i, self.target)]
        self.attributes = reveals(self.target, self.rng)

    def message(self, turn: int) -> str:
        """The message of turn `turn` (0-based); after turn 0 it follows a shown list
        without the target."""
        parts: list[str] = []
        if turn == 0:
            if self.opening:
                names = [spoken(i.title) for i in self.opening]
                joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + \
                    " and " + names[-1]
                parts.append(f"I loved {joined}.")
            else:
                parts.append("Can you recommend a movie?")
        else:
            parts.append(REACTIONS[(turn - 1) % len(REACTIONS)])
        if turn < len(self.attributes):
            parts.append(self.attributes[turn])
        elif turn > 0:
            parts.append("Something else, please.")
        text = " ".join(parts)
        return text if not states_title(text, self.target.title) else parts[-1]


@dataclass
class GuardResult:
    message: str
    leaked: bool
    """The offered message reached the threshold and was replaced."""
    score: float


@dataclass(frozen=True)
class LeakGuard:
    threshold: float = LEAK_THRESHOLD

    def score(self, message: str, title: str) -> float:
        name = normalise(title)
        return float(fuzz.partial_ratio(name, normalise(message))) if name else 0.0

    def check(self, offered: str, title: str, fallback: str) -> GuardResult:
        """`offered` if it stays under the threshold, else `fallback` (the rules message)."""
        score = self.score(offered, title)
        if score < self.threshold:
            return GuardResult(offered, False, score)
        return GuardResult(fallback, True, score)


def pick_opening(liked: Sequence[Item], target: Item, rng: random.Random, low: int, high: int
                 ) -> list[Item]:
    """0-3 (low-high) of the user's own liked items, none giving the target away."""
    pool = [i for i in liked if i.id != target.id and not gives_away(i, target)]
    n = min(len(pool), rng.randint(low, high))
    return rng.sample(pool, n)
