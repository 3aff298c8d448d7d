"""The form an LLM's explanation must have to earn its place over the template: one whole
sentence, within the prompt's word limit, in the model's own words.

The checker (recagent/explain/checker.py) decides whether a sentence is *true* to the
evidence; these rules decide whether it is *worth shipping*. A model that was cut off (the
server's finish_reason "length", or a sentence that stops mid-clause at the schema's
length bound), that rambles past the limit the prompt set, that pastes the evidence
bullets back ("You liked X; 52% of people who liked it also liked this one; of what you
liked, ..."), or that writes several sentences where one was asked, reads worse than the
template written from the same evidence, so the template ships instead. They apply to
LLM sentences only: templates are written to be complete and may be longer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from recagent.types import ExplanationFailure

MAX_WORDS = 30
"""The prompt's limit (prompts/explain_items.j2 is rendered with it)."""
COPY_SHARE = 0.5
"""A sentence most of whose word 3-grams are in its item's evidence lines is a copy."""

_WORDS = re.compile(r"[a-z0-9']+")
_ENDS = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
"""A sentence ends with . ! ? or an ellipsis, perhaps inside closing quotes or brackets."""
_BREAK = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c(]?[A-Z0-9\u2023])")
"""Where one sentence ends and the next begins (in prose whose titles are masked, so
"L.A. Confidential" or "E.T." break nothing)."""


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def trigrams(tokens: list[str]) -> set[tuple[str, str, str]]:
    return set(zip(tokens, tokens[1:], tokens[2:], strict=False))


def copied_share(sentence: str, evidence_lines: Iterable[str]) -> float:
    """The share of the sentence's word 3-grams that occur in the evidence lines."""
    own = trigrams(words(sentence))
    if not own:
        return 0.0
    given: set[tuple[str, str, str]] = set()
    for line in evidence_lines:
        given |= trigrams(words(line))
    return len(own & given) / len(own)


def form_failures(sentence: str, prose: str, n_titles: int, *, evidence_lines: Iterable[str],
                  cut_off: bool = False, max_words: int = MAX_WORDS
                  ) -> list[ExplanationFailure]:
    """Every rule of form the sentence breaks (empty: it may ship, if the checker agrees).

    `prose`: the sentence with each catalog title it names masked (the checker's
    `Checker.prose`), `n_titles` how many; a title counts as one word. `cut_off`: the
    server stopped the answer at its token limit."""
    out: list[ExplanationFailure] = []
    text = prose.strip()
    if cut_off:
        out.append(ExplanationFailure(kind="cut_off", detail="the server cut the answer off "
                                                             "at its token limit"))
    elif not _ENDS.search(text):
        out.append(ExplanationFailure(kind="cut_off", detail=f"does not end as a sentence: "
                                                             f"...{sentence[-40:]!r}"))
    count = len(words(prose.replace("\u2023", " "))) + n_titles
    if count > max_words:
        out.append(ExplanationFailure(kind="too_long", detail=f"{count} words; the prompt "
                                                              f"asked for at most {max_words}"))
    if len(_BREAK.findall(text)) >= 1:
        out.append(ExplanationFailure(kind="several_sentences",
                                      detail="more than one sentence where one was asked"))
    share = copied_share(sentence, evidence_lines)
    if share > COPY_SHARE:
        out.append(ExplanationFailure(kind="copies_evidence", detail=f"{share:.0%} of its word "
                                      "3-grams are the evidence lines' own: a copy"))
    return out
