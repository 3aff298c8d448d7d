"""Check an explanation before it ships: it may only say what the evidence and the history back.

Rules (each failure is a typed `ExplanationFailure`):
  * not empty, no talk about the prompt's labels ("A is the best", "[C]") or about the
    prompt itself ("the user", "candidate", "#2"), no looping phrase, not the same sentence
    as an earlier item's in the list (`text_problem`, shared with the gate);
  * every catalog title it names is the item itself or in the user's history, matched
    leniently ("The Usual Suspects" ~ "Usual Suspects, The (1995)"); a "(1977)" must follow
    such a title and be its year;
  * every genre word of the catalog's vocabulary it uses is the item's or a cited or
    named history item's;
  * every percentage it quotes is one of the evidence's;
  * it never says the item is in the user's history, or was watched / rated / seen by them;
  * it is not bare metadata ("Star Trek (1982). Genres: Action.").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from recagent.chat.lookup import normalise_title
from recagent.explain.evidence import item_genres, item_year
from recagent.explain.form import MAX_WORDS, form_failures
from recagent.types import Evidence, ExplanationFailure, ExplanationFailureKind, Item

_LABEL_TALK = re.compile(
    r"\[[A-Z]{1,2}\]|\b(?i:candidate|option|choice|letter|label|item)s?\s+(?!I\b)[A-Z]{1,2}\b"
    r"|^[A-Z]{1,2}(?:\s+(?:is|was|has|fits|seems)\b|\s*[:)]|\s*\.(?![A-Za-z]))")
"""A reason that talks about the prompt's labels ("A is the best candidate", "[C]") says
nothing to a user, who never saw the labels. A title that opens with initials ("L.A.
Confidential", "E.T. the Extra-Terrestrial") is not a label."""
_META_TALK = re.compile(
    r"\bthe\s+user\b|\buser's\b|\bcandidates?\b|\bevidence\b|\bprompt\b|#\s?\d+"
    r"|\b(?:recommendation|item|number|no\.)\s*\d+\b", re.IGNORECASE)
"""Words about the prompt rather than the item: the reader is "you", not "the user"."""
_IN_HISTORY = re.compile(
    r"\b(?:in|from|among|within|part\s+of)\s+(?:the\s+)?(?:user'?s?|your|their|his|her)\s+"
    r"(?:own\s+)?(?:watch(?:ing)?\s+|viewing\s+|rating\s+|past\s+)?"
    r"(?:history|watch\s?list|ratings|list|collection|library)\b", re.IGNORECASE)
_ALREADY = re.compile(
    r"\b(?:already|previously)\s+(?:been\s+)?(?:seen|watched|rated|viewed|saw|own|owned|in)\b"
    r"|\bre-?watch\w*|\b(?:watch|see|view)\s+(?:it|this)\s+again\b|\brevisit\w*",
    re.IGNORECASE)
"""'already seen', 'a rewatch', 'watch it again': said of an item the user has not seen."""
_DID_IT = re.compile(
    r"\b(?:you|user)\s+(?:(?:have|has|had|already|previously|also|once|really)\s+)*"
    r"(?:watched|seen|rated|saw|viewed|loved|liked|enjoyed)\s+(?:this|it)\b", re.IGNORECASE)
_ITEM = "\u2023"
"""Stands for the item's own title in the prose the wording rules read."""
_VERB = (r"(?:(?:have|has|had|already|previously|also|once|really)\s+)*"
         r"(?:watched|seen|rated|saw|viewed|loved|liked|enjoyed)")
_DID_ITEM = re.compile(
    rf"\b(?:you|user)\s++{_VERB}\s++(?:(?:the|a|an)\s++)?{_ITEM}"
    rf"|{_ITEM}(?>\s*+\(\d{{4}}\))?\s*+(?>,\s*+)?(?>(?:which|that)\s++)?you\s++{_VERB}\b",
    re.IGNORECASE)
r"""'you watched <item>', '<item>, which you rated': the item named as already had. Its
runs of spaces are possessive (`\s*+`): a search never backtracks into them, so it takes
time linear in the text, whatever a catalog title holds."""
_ARTICLES = {"the", "a", "an", "les", "la", "le", "il", "el", "der", "die", "das"}
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*(?:%|percent\b|per\s+cent\b)", re.IGNORECASE)
_YEAR_IN_PARENS = re.compile(r"\((1[89]\d\d|20\d\d)\)")
_WORD = re.compile(r"[a-z0-9]+")
_METADATA_LABEL = re.compile(r"\bgenres?\s*:", re.IGNORECASE)
_STOP = {"a", "an", "the", "and", "or", "of", "in", "is", "it", "its", "this", "film", "movie",
         "title", "genre", "genres", "year", "from", "with", "by", "on", "to"}

GENRE_WORDS: dict[str, tuple[str, ...]] = {
    "sci-fi": ("sci-fi", "scifi", "sci fi", "science fiction", "science-fiction"),
    "children's": ("children's", "childrens", "children", "kids", "kid's"),
    "film-noir": ("film-noir", "film noir", "noir"),
    "animation": ("animation", "animated", "cartoon", "cartoons"),
    "comedy": ("comedy", "comedies", "comedic"),
    "documentary": ("documentary", "documentaries"),
    "mystery": ("mystery", "mysteries"),
    "romance": ("romance", "romances", "romantic"),
    "fantasy": ("fantasy", "fantasies"),
}
"""Other words for common genre names; every genre also matches its own name (+ 's')."""


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def same_sentence(a: str, b: str) -> bool:
    """Equal but for case, spacing and punctuation."""
    return _WORD.findall(_fold(a).lower()) == _WORD.findall(_fold(b).lower())


def text_problem(text: str, earlier: Sequence[str] = (), *,
                 prose: str | None = None) -> ExplanationFailureKind | None:
    """The rules that need no evidence: empty, talk about the prompt's labels, a phrase
    looping, the same sentence as an earlier one (None: none of these). `prose`: the text
    with its known titles masked, where label talk is looked for ("B. Monkey" is a title)."""
    text = text.strip()
    if not _WORD.search(_fold(text).lower()):
        return "empty"
    if _LABEL_TALK.search(text if prose is None else prose.strip()):
        return "label_talk"
    words = re.findall(r"[a-z0-9']+", text.lower())
    trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
    if trigrams and max(trigrams.values()) >= 3:
        return "looping"
    if any(same_sentence(text, e) for e in earlier):
        return "repeated"
    return None


@dataclass(frozen=True)
class _Match:
    start: int
    end: int  # token indices, end exclusive
    key: str  # the normalised title


@functools.lru_cache(maxsize=4096)
def _genre_forms(name: str) -> tuple[str, ...]:
    """The words that name this genre, as lower-case tokens joined by spaces."""
    low = name.lower()
    forms = (low, f"{low}s", *GENRE_WORDS.get(low, ()))
    return tuple(dict.fromkeys(" ".join(_WORD.findall(_fold(f))) for f in forms))


TitleIndex = dict[str, set[tuple[str, ...]]]
"""First word of a normalised title → the titles (as word tuples) starting with it."""


def _index(keys: Iterable[str]) -> TitleIndex:
    index: TitleIndex = {}
    for key in keys:
        words = tuple(key.split())
        if words:
            index.setdefault(words[0], set()).add(words)
    return index


@dataclass(frozen=True)
class Worded:
    """What the rules of form need to know of an LLM sentence: its item's evidence lines as
    the prompt showed them, whether the server cut the answer off, the prompt's limit."""

    lines: tuple[str, ...] = ()
    cut_off: bool = False
    max_words: int = MAX_WORDS


@dataclass(frozen=True)
class Scope:
    """What the checker knows for one list: the user's history (by normalised title, with
    genres and years) and the request's titles and genre names."""

    past: dict[str, list[Item]]
    past_years: dict[str, set[int | None]]
    titles: TitleIndex
    genres: set[str]


class Checker:
    """Checks sentences against one catalog's vocabulary: its genre names and (optionally)
    every title it holds; titles of a request's history and candidates are added per list."""

    def __init__(self, genres: Iterable[str] = (), titles: Iterable[str] = ()) -> None:
        self.genres = {g for g in genres if g}
        self.titles = _index(k for k in (normalise_title(t) for t in titles) if k)

    def scope(self, history: Sequence[Item], titles: Iterable[str] = (),
              genres: Iterable[str] = ()) -> Scope:
        """The per-list context: `history` is the user's items, `titles` and `genres` more
        of the catalog's vocabulary (e.g. the request's candidates)."""
        past: dict[str, list[Item]] = {}
        for item in history:
            past.setdefault(normalise_title(item.title), []).append(item)
        years = {k: {y for i in items for y in (item_year(i), _title_year(i.title))}
                 for k, items in past.items()}
        more = _index([*past, *(k for k in map(normalise_title, titles) if k)])
        vocabulary = self.genres | set(genres) | {g for i in history for g in item_genres(i)}
        return Scope(past, years, more, vocabulary)

    def check(
        self,
        sentence: str,
        evidence: Evidence,
        history: Sequence[Item],
        *,
        earlier: Sequence[str] = (),
        titles: Iterable[str] = (),
        genres: Iterable[str] = (),
    ) -> list[ExplanationFailure]:
        """Every rule the sentence breaks (empty: it may ship); `earlier` are the sentences
        already shipped for this list. See `scope` for the rest; `check_in` reuses one."""
        return self.check_in(sentence, evidence, self.scope(history, titles, genres),
                             earlier=earlier)

    def check_in(self, sentence: str, evidence: Evidence, scope: Scope, *,
                 earlier: Sequence[str] = (), worded: Worded | None = None
                 ) -> list[ExplanationFailure]:
        """`check` within a prepared `scope` (one per list: cheaper for long histories).
        `worded`: the sentence is an LLM's, so the rules of form apply too
        (recagent/explain/form.py)."""
        text = _fold(sentence)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text.lower())]
        words = [text[a:b].lower() for a, b in spans]
        own = normalise_title(evidence.title)
        allowed = {own, *scope.past}
        cited = {g for link in evidence.because for g in link.genres}
        vocabulary = scope.genres | set(evidence.genres) | cited
        genre_words = {f for g in vocabulary for f in _genre_forms(g)}
        found = _titles_in(words, [text[a] for a, _ in spans],
                           [self.titles, scope.titles, _index([own])], allowed, genre_words)
        # The rules on wording read the prose around titles ("The Manchurian Candidate" is
        # no talk about candidates); the item's own title becomes a marker.
        plain = _masked(text, [(spans[m.start][0], spans[m.end - 1][1], m.key == own)
                               for m in found])
        problem = text_problem(sentence, earlier, prose=plain)
        if problem is not None:
            return [ExplanationFailure(kind=problem, detail=f"{problem}: {sentence!r}")]
        out: list[ExplanationFailure] = []
        for m in found:
            if m.key not in allowed:
                named = text[spans[m.start][0]:spans[m.end - 1][1]]
                out.append(_failure("unknown_title", f"names {named!r}, neither the item "
                                                     "nor in the history"))
        if worded is not None:
            out += form_failures(sentence, plain, len(found), evidence_lines=worded.lines,
                                 cut_off=worded.cut_off, max_words=worded.max_words)
        if meta := _META_TALK.search(plain):
            out.append(_failure("meta_talk", f"talks about the prompt ({meta.group(0)!r})"))
        years = dict(scope.past_years)
        years[own] = years.get(own, set()) | {evidence.year, _title_year(evidence.title)}
        out += _year_failures(text, spans, words, found, years)
        masked = [w if not any(m.start <= n < m.end for m in found) else ""
                  for n, w in enumerate(words)]
        named_genres = {g for m in found for i in scope.past.get(m.key, [])
                        for g in item_genres(i)}
        may = {g.lower() for g in (*evidence.genres, *cited, *named_genres)}
        out += _genre_failures(masked, vocabulary, may)
        out += _number_failures(plain, evidence)
        if claim := (_IN_HISTORY.search(plain) or _ALREADY.search(plain)
                     or _DID_IT.search(plain) or _DID_ITEM.search(plain)):
            what = claim.group(0).replace(_ITEM, evidence.title)
            out.append(_failure("claims_seen", f"says the user already has or watched the "
                                               f"item ({what!r})"))
        forms = {w for f in genre_words for w in f.split()}
        content = [w for w in masked if w and w not in _STOP and w not in forms
                   and not w.isdigit()]
        if _METADATA_LABEL.search(plain) or not content:
            out.append(_failure("bare_metadata", "only catalog metadata, no reason"))
        return out


def _masked(text: str, found: list[tuple[int, int, bool]]) -> str:
    """The text with each title span (start, end, is the item's own) replaced by one space,
    or by the item marker: the wording rules then read short prose, however long a title."""
    out, at = [], 0
    for start, end, own in found:
        out += [text[at:start], f" {_ITEM} " if own else " "]
        at = end
    out.append(text[at:])
    return "".join(out)


def _title_year(title: str) -> int | None:
    years = _YEAR_IN_PARENS.findall(title)
    return int(years[-1]) if years else None


def _failure(kind: ExplanationFailureKind, detail: str) -> ExplanationFailure:
    return ExplanationFailure(kind=kind, detail=detail)


def _year_failures(text: str, spans: list[tuple[int, int]], words: list[str],
                   found: list[_Match], years: dict[str, set[int | None]]
                   ) -> list[ExplanationFailure]:
    """A "(1977)" must come right after (or after a moved article: "Usual Suspects, The
    (1995)") a title of the item or the history, and be that title's year."""
    ends = {m.end: m.key for m in found if m.key in years}
    out = []
    for match in _YEAR_IN_PARENS.finditer(text):
        at = next(n for n, (a, _) in enumerate(spans) if a > match.start())
        key = ends.get(at)
        if key is None and at >= 1 and words[at - 1] in _ARTICLES:
            key = ends.get(at - 1)
        known = years.get(key, set()) if key is not None else set()
        if key is None or not (None in known or int(match.group(1)) in known):
            out.append(_failure("unknown_title", f"{match.group(0)} follows no title of the "
                                                 "item or the history with that year"))
    return out


def _genre_failures(masked: list[str], vocabulary: set[str], may: set[str]
                    ) -> list[ExplanationFailure]:
    """Genre words outside titles that neither the item nor a cited item has."""
    said = " " + " ".join(w or "|" for w in masked) + " "
    out = []
    for genre in sorted(vocabulary):
        if genre.lower() in may:
            continue
        for form in _genre_forms(genre):
            if f" {form} " in said:
                out.append(_failure("unknown_genre", f"says {form!r}, a genre neither the "
                                                     "item nor a cited history item has"))
                break
    return out


def _number_failures(text: str, evidence: Evidence) -> list[ExplanationFailure]:
    """Every percentage must be one of the evidence's shares (to the nearest point)."""
    quoted = [link.strength * 100 for link in evidence.because if link.strength is not None]
    return [_failure("unknown_number", f"quotes {m.group(0)!r}, a share the evidence does "
                                       "not have")
            for m in _PERCENT.finditer(text)
            if not any(abs(float(m.group(1)) - q) <= 1.0 for q in quoted)]


def _titles_in(words: list[str], firsts: list[str], indexes: Sequence[TitleIndex],
               allowed: set[str], genre_words: set[str]) -> list[_Match]:
    """Title mentions, longest first and never overlapping. A title outside `allowed`
    counts only when written capitalised ("a heat wave" is not Heat), not all digits, not
    a single word opening the sentence ("People like you..." names no film "People"), and
    not a genre word ("Romance" is a genre first)."""
    matches: list[_Match] = []
    for first, word in enumerate(words):
        proper = firsts[first][:1].isupper() or firsts[first][:1].isdigit()
        for index in indexes:
            for title in index.get(word, ()):
                end = first + len(title)
                if tuple(words[first:end]) != title:
                    continue
                key = " ".join(title)
                if key not in allowed and (
                        not proper or all(w.isdigit() for w in title) or key in genre_words
                        or (first == 0 and len(title) == 1)):
                    continue
                matches.append(_Match(first, end, key))
    chosen: list[_Match] = []
    for m in sorted(matches, key=lambda m: (m.start - m.end, m.key not in allowed, m.start)):
        if all(m.end <= c.start or m.start >= c.end for c in chosen):
            chosen.append(m)
    return sorted(chosen, key=lambda m: m.start)
