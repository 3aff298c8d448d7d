"""Read hard preferences out of a chat message with rules, no model involved.

A 135M model mixes up "nothing before 1990" and "nothing after 1990", so the words
that match the catalog's own vocabulary (its genre names, years, "I've seen X",
"the second one") are parsed here, deterministically; what this pass decides wins
over the model's extraction. Titles are only cut out of the text here; finding
them in the catalog is `catalog_lookup`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from recagent.types import YEAR_MAX, YEAR_MIN, ProfileDelta

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sci-fi": ("sci-fi", "scifi", "sci fi", "science fiction", "science-fiction"),
    "children's": ("children's", "childrens", "children", "kids", "kid's", "family"),
    "film-noir": ("film-noir", "film noir", "noir"),
    "animation": ("animation", "animated", "cartoon", "cartoons"),
    "comedy": ("comedy", "comedies", "funny"),
    "documentary": ("documentary", "documentaries"),
    "horror": ("horror", "scary"),
    "mystery": ("mystery", "mysteries"),
    "romance": ("romance", "romances", "romantic"),
}
"""Extra words for common genre names; every genre also matches its own name (+ 's')."""

_NEGATION = re.compile(
    r"\b(?:no|not|nothing|none|without|never|avoid|hate|hated|dislike|disliked|skip|except|"
    r"exclude|excluding|less|minus|tired\s+of|sick\s+of|fed\s+up\s+with|rather\s+not)\b|n't\b",
    re.IGNORECASE,
)
_ALLOW = re.compile(
    r"\b(?:is|are)\s+(?:fine|ok|okay|alright|allowed)\b|\bagain\b|\bback\s+in\b|"
    r"\bdon't\s+mind\b|\bok\s+with\b|\bokay\s+with\b",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(
    r"[.;!?\n\u00a6]|,|\b(?:but|though|although|however|so|yet|whereas)\b", re.IGNORECASE
)
_CUT = "\u00a6"
"""Replaces text a rule has consumed, so later rules neither see nor span it."""

# ---- titles ---------------------------------------------------------------------------

_SEEN = (
    r"(?:\bi(?:'ve|\s+have)?\s+(?:already\s+|also\s+)?(?:seen|watched|saw)|"
    r"\balready\s+(?:seen|watched|saw))"
)
_DISLIKED = (
    r"(?:\bi\s+(?:really\s+)?(?:hated|hate|disliked|dislike|didn't\s+like|did\s+not\s+like|"
    r"don't\s+like|do\s+not\s+like|couldn't\s+stand|can't\s+stand)|\bnot\s+a\s+fan\s+of|"
    r"\b(?:less|nothing)\s+like)"
)
_LIKED = (
    r"(?:\bi\s+(?:really\s+|absolutely\s+|also\s+)?(?:loved|love|liked|like|enjoyed|enjoy|"
    r"adored|adore)|\b(?:more|something|anything|things|movies?|films?|stuff)\s+like|"
    r"\bsimilar\s+to|\bin\s+the\s+(?:vein|style|spirit)\s+of)"
)
_TRIGGERS = (("seen", _SEEN), ("disliked", _DISLIKED), ("liked", _LIKED))
STATED = re.compile(f"{_SEEN}|{_DISLIKED}|{_LIKED}", re.IGNORECASE)
"""The words that state a taste for the title after them ("I've seen", "I loved", "not a
fan of", "something like")."""
_MENTION_END = re.compile(
    r"[.;!?\n\u00a6]|\b(?:but|though|although|however|because|since|so|if)\b", re.IGNORECASE
)
_NOT_A_TITLE = re.compile(
    r"(?:,|\band\b|&)\s*(?=(?:something|anything|nothing|no|not|i|i'm|i'd|please|maybe|with|"
    r"without|just|preferably|ideally|only|also|it's|its|make|give|show)\b)",
    re.IGNORECASE,
)
_TRAILING_FILLER = re.compile(
    r"(?:\s+(?:too|as\s+well|already|a\s+lot|very\s+much|so\s+much|again|though))+$",
    re.IGNORECASE,
)
_KIND_WORDS = re.compile(r"\s+(?:movies?|films?|flicks?|ones?|stuff)$", re.IGNORECASE)
_DANGLING = re.compile(r"(?:\s*(?:\band\b|\bor\b|&|,))+$", re.IGNORECASE)
_QUANTITY = re.compile(
    r"^(?:enough|all(?:\s+the)?|too\s+many|lots\s+of|plenty\s+of|many|some|a\s+lot\s+of)\s+",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:(?:movies?|films?|things|stuff|something|anything)\s+like|the\s+(?:movie|film))\s+",
    re.IGNORECASE,
)

# ---- years ----------------------------------------------------------------------------

_T = r"(?:(?:the\s+)?(?:(?:1[89]|20)?\d0)'?s\b|(?:1[89]\d\d|20\d\d)\b)"
_NEG_WORD = r"(?:nothing|none|not|no|[a-z]+n't)(?:\s+[\w']+){0,3}?"
_YEAR_RULES: tuple[tuple[str, str], ...] = (
    ("min_start", rf"\b{_NEG_WORD}\s+(?:before|older\s+than|earlier\s+than|prior\s+to)\s+({_T})"),
    ("max_end", rf"\b{_NEG_WORD}\s+(?:after|newer\s+than|later\s+than|since)\s+({_T})"),
    ("range", rf"\bbetween\s+({_T})\s+and\s+({_T})"),
    ("range", rf"\b(?:from\s+)?({_T})\s*(?:-|\u2013|to|until|through)\s*({_T})"),
    ("min_start", rf"\b(?:since|from)\s+({_T})\s+(?:on|onwards?|forwards?)\b"),
    ("min_start", rf"\b({_T})\s+(?:or|and)\s+(?:later|newer|after|up|onwards?)\b"),
    ("min_start", rf"\b({_T})\s+onwards?\b"),
    ("min_start", rf"\bsince\s+({_T})"),
    ("min_after", rf"\b(?:after|newer\s+than|later\s+than|post-?)\s*({_T})"),
    ("max_end", rf"\b({_T})\s+or\s+(?:earlier|older|before)\b"),
    ("max_end", rf"\b(?:until|till|up\s+to|through|no\s+later\s+than)\s+({_T})"),
    ("max_before", rf"\b(?:before|older\s+than|earlier\s+than|prior\s+to|pre-?)\s*({_T})"),
    ("decade", r"\b((?:the\s+)?(?:(?:1[89]|20)?\d0)'?s)\b"),
)
_ANY_YEAR = re.compile(
    r"\b(?:any\s+(?:year|decade|era|age)|no\s+year\s+(?:limits?|restrictions?)|"
    r"old\s+(?:movies?|films?|ones?)\s+(?:are|is)\s+(?:fine|ok|okay))\b",
    re.IGNORECASE,
)

# ---- references to the last list -------------------------------------------------------

_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "top": 1,
}  # fmt: skip
_POSITION = re.compile(
    r"^(?:the\s+)?(?:(?P<word>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|"
    r"tenth|top|last)|(?P<num>\d{1,2})(?:st|nd|rd|th)?|(?:#|number\s+|no\.?\s*)(?P<hash>\d{1,2}))"
    r"(?:\s+(?:one|item|pick|movie|film|title|suggestion))?$",
    re.IGNORECASE,
)
_PRONOUN = re.compile(
    r"^(?:it|that|this|that\s+one|this\s+one|the\s+one|that\s+movie|that\s+film|this\s+movie)$",
    re.IGNORECASE,
)

_STOPWORD_TEXT = """
    a an the and or but so of to in on at for with from by about as is are was were be been
    i i'm i've i'd me my we you your it its it's this that these those some any something
    anything nothing more less very really just also too please want would like could can
    give show find recommend suggest tell get need maybe perhaps kind sort lot bit one ones
    movie movies film films flick flicks watch watching tonight today now again then than
    not no don't do does did have has had will shall should must might what which who how
    let let's ok okay thanks thank yes yeah well fine alright allowed mind stuff things
    ignore instead only"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class ParsedMessage:
    """The rule-based reading of one message.

    `residue` is the message with every consumed phrase cut out: what is left for
    free-text wishes, and for checking that a model's claim is grounded in the words."""

    delta: ProfileDelta
    residue: str
    title_spans: tuple[str, ...] = ()


def genre_words(genres: Iterable[str]) -> dict[str, str]:
    """Every word or phrase that names a genre → the catalog's genre name."""
    words: dict[str, str] = {}
    for genre in genres:
        low = genre.lower()
        variants = {low, low.replace("-", " "), low.replace("-", "")}
        if len(low) >= 5:  # 'westerns', 'thrillers'; but 'wars' is Star Wars, not War
            variants.add(low + "s")
        variants.update(_SYNONYMS.get(low, ()))
        for v in variants:
            words.setdefault(v, genre)
    return words


def parse_message(text: str, genres: Sequence[str]) -> ParsedMessage:
    """Years, seen/liked/disliked mentions and genre words, in that order."""
    work = text
    delta: dict[str, object] = {}
    work = _parse_years(work, delta)
    lexicon = genre_words(genres)
    titles: dict[str, list[str]] = {"liked": [], "disliked": [], "seen": []}
    include: list[str] = []
    exclude: list[str] = []
    allow: list[str] = []
    spans: list[str] = []
    work = _parse_mentions(work, titles, lexicon, include, exclude, spans)
    work = _parse_genres(work, lexicon, include, exclude, allow)
    if _ANY_YEAR.search(work):
        delta["clear_years"] = True
        work = _ANY_YEAR.sub(_cut, work)
    residue = _CUT_RUN.sub(" ", work).strip()
    wish = wish_words(residue)
    return ParsedMessage(
        delta=ProfileDelta(
            liked=titles["liked"], disliked=titles["disliked"], seen=titles["seen"],
            include_genres=_unique(include), exclude_genres=_unique(exclude),
            allow_genres=_unique(allow), wishes=[wish] if wish else [],
            **delta,  # type: ignore[arg-type]
        ),
        residue=residue,
        title_spans=tuple(spans),
    )


def wish_words(text: str) -> str:
    """The content words of free text, in order: what is worth embedding as a query."""
    words = re.findall(r"[a-z0-9][a-z0-9'\-]*", text.lower())
    kept = [w for w in words if w not in _STOPWORDS and len(w) > 2 and not w.isdigit()]
    return " ".join(kept)[:200].strip()


def list_position(mention: str, n_shown: int) -> int | None:
    """'the second one', '#2', '2nd', 'the last one' → a 1-based position in the last list."""
    m = _POSITION.match(mention.strip().rstrip(".!?"))
    if m is None or n_shown == 0:
        return None
    if m["word"]:
        word = m["word"].lower()
        pos = n_shown if word == "last" else _ORDINALS[word]
    else:
        pos = int(m["num"] or m["hash"])
    return pos if 1 <= pos <= n_shown else None


def is_pronoun(mention: str) -> bool:
    """'it', 'that one': refers to the item most recently talked about."""
    return bool(_PRONOUN.match(mention.strip().rstrip(".!?")))


# ---- internals ------------------------------------------------------------------------

_CUT_RUN = re.compile(rf"[{_CUT}\s]*{_CUT}[{_CUT}\s]*")


def _cut(match: re.Match[str]) -> str:
    return _CUT * len(match.group(0))


def _replace(work: str, start: int, end: int) -> str:
    return work[:start] + _CUT * (end - start) + work[end:]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _span(term: str) -> tuple[int, int]:
    """A year or a decade ('1980s', 'the 80s', "'90s") → (first year, last year)."""
    digits = re.sub(r"\D", "", term)
    if len(digits) == 4 and not term.rstrip().lower().endswith("s"):
        year = int(digits)
        return year, year
    # '80s' → the 1980s; '00s' and '10s' → the 2000s and 2010s
    century = 0 if len(digits) != 2 else (2000 if digits[0] in "01" else 1900)
    start = century + int(digits)
    return start, start + 9


def _clamp(year: int) -> int:
    return max(YEAR_MIN, min(YEAR_MAX, year))


def _parse_years(work: str, delta: dict[str, object]) -> str:
    for kind, pattern in _YEAR_RULES:
        for m in list(re.finditer(pattern, work, re.IGNORECASE)):
            if _CUT in m.group(0):
                continue
            first, last = _span(m.group(1))
            if kind == "decade":
                before = work[: m.start()][-30:]
                clause = _CLAUSE_BREAK.split(before)[-1]
                if not _NEGATION.search(clause):  # "nothing from the 80s" is not a range
                    delta["year_min"], delta["year_max"] = first, last
            elif kind == "range":
                delta["year_min"], delta["year_max"] = first, _span(m.group(2))[1]
            elif kind == "min_start":
                delta["year_min"] = first
            elif kind == "min_after":
                delta["year_min"] = last + 1
            elif kind == "max_end":
                delta["year_max"] = last
            elif kind == "max_before":
                delta["year_max"] = first - 1
            work = _replace(work, m.start(), m.end())
    for key in ("year_min", "year_max"):
        if key in delta:
            delta[key] = _clamp(int(delta[key]))  # type: ignore[call-overload]
    return work


def _parse_mentions(
    work: str,
    titles: dict[str, list[str]],
    lexicon: dict[str, str],
    include: list[str],
    exclude: list[str],
    spans: list[str],
) -> str:
    for kind, trigger in _TRIGGERS:
        for m in list(re.finditer(trigger, work, re.IGNORECASE)):
            if _CUT in work[m.start() : m.end()]:
                continue
            rest = work[m.end() :]
            stop = _MENTION_END.search(rest)
            phrase = rest[: stop.start() if stop else len(rest)]
            cut = _NOT_A_TITLE.search(phrase)
            if cut:
                phrase = phrase[: cut.start()]
            mention = _clean_mention(phrase)
            if not mention:
                continue
            genre = lexicon.get(_QUANTITY.sub("", _KIND_WORDS.sub("", mention)).lower())
            if genre is not None:  # "I like horror", "I've seen enough westerns"
                (include if kind == "liked" else exclude).append(genre)
            else:
                titles[kind].append(mention)
                spans.append(mention)
            work = _replace(work, m.start(), m.end() + len(phrase))
    return work


def _clean_mention(phrase: str) -> str:
    mention = phrase.strip().strip("\"'\u201c\u201d\u2018\u2019 ,:-")
    mention = _TRAILING_FILLER.sub("", mention).strip().strip("\"'\u201c\u201d ,")
    mention = _DANGLING.sub("", mention).strip()
    mention = _LEAD_IN.sub("", mention)
    if not mention or len(mention) > 120:
        return ""
    return mention


def _parse_genres(
    work: str,
    lexicon: dict[str, str],
    include: list[str],
    exclude: list[str],
    allow: list[str],
) -> str:
    names = sorted(lexicon, key=len, reverse=True)  # 'science fiction' before 'fiction'
    if not names:  # a catalog without genres: an empty pattern would match everywhere
        return work
    pattern = re.compile(
        r"(?<![\w-])(?:" + "|".join(re.escape(n) for n in names) + r")(?![\w-])", re.IGNORECASE
    )
    context = work  # "no horror or thriller": cutting 'horror' must not end the clause
    for m in list(pattern.finditer(context)):
        genre = lexicon[m.group(0).lower()]
        before = _CLAUSE_BREAK.split(context[: m.start()])[-1]
        after = _CLAUSE_BREAK.split(context[m.end() :])[0]
        if _NEGATION.search(before):
            exclude.append(genre)
        elif _ALLOW.search(after) or _ALLOW.search(before):
            allow.append(genre)
        else:
            include.append(genre)
        work = _replace(work, m.start(), m.end())
    return work
