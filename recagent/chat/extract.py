"""Ask the LLM to read a chat message into a bounded schema, then keep only what holds.

The schema pins genres to the catalog's own list and bounds every field, so even a
tiny model cannot run away. What it returns is still only a proposal: a title must
occur in the message, a year must be written in it, a genre it asks for is only a
soft wish (a genre limit needs the genre's own word, which the rules read), and
anything the rule-based pass (`chat_parse`) decided overrides it.
Measured on SmolLM2-135M, the model files one title under liked, disliked and seen
at once and flips "before" and "after"; these rules make that harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from recagent.chat.lookup import normalise_title
from recagent.chat.parse import ParsedMessage, wish_words
from recagent.llm.client import JsonSchema, LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import structured_call
from recagent.types import YEAR_MAX, YEAR_MIN, Invocation, ProfileDelta

TITLE_MAX_CHARS = 80
WISH_MAX_CHARS = 80
MAX_TITLES = 3
MAX_GENRES = 3

Title = Annotated[str, Field(max_length=TITLE_MAX_CHARS)]
EXTRACTION_EXAMPLE = ('{"liked": [], "disliked": [], "seen": [], "genres": [], "not_genres": [], '
                      '"year_min": null, "year_max": null, "wish": ""}')
"""The answer's JSON shape, shown again when an extraction is re-asked."""


class ExtractionAnswer(BaseModel):
    """What the model fills in; lenient on extra keys (json_object fallback servers)."""

    model_config = ConfigDict(extra="ignore")
    liked: list[Title] = Field(default_factory=list, max_length=MAX_TITLES)
    disliked: list[Title] = Field(default_factory=list, max_length=MAX_TITLES)
    seen: list[Title] = Field(default_factory=list, max_length=MAX_TITLES)
    genres: list[str] = Field(default_factory=list, max_length=MAX_GENRES)
    not_genres: list[str] = Field(default_factory=list, max_length=MAX_GENRES)
    year_min: Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)] | None = None
    year_max: Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)] | None = None
    wish: Annotated[str, Field(max_length=WISH_MAX_CHARS)] = ""


def extraction_schema(genres: Sequence[str]) -> JsonSchema:
    """Bounded JSON schema: genre enums from the catalog, short strings, few items."""
    title = {"type": "string", "minLength": 1, "maxLength": TITLE_MAX_CHARS}
    titles = {"type": "array", "items": title, "maxItems": MAX_TITLES}
    genre_list = {"type": "array", "maxItems": MAX_GENRES if genres else 0,
                  "items": {"type": "string", "enum": list(genres) or [""]}}
    year = {"anyOf": [{"type": "integer", "minimum": YEAR_MIN, "maximum": YEAR_MAX},
                      {"type": "null"}]}
    properties = {
        "liked": titles, "disliked": titles, "seen": titles,
        "genres": genre_list, "not_genres": genre_list,
        "year_min": year, "year_max": year,
        "wish": {"type": "string", "maxLength": WISH_MAX_CHARS},
    }
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


class LLMExtractor:
    """One structured call per message, re-asked once when unusable (then the rule-based
    pass is the fallback)."""

    def __init__(self, client: LLMClient, prompts: PromptLibrary, genres: Sequence[str], *,
                 template: str = "chat_extract", max_tokens: int = 160) -> None:
        self.client = client
        self.prompts = prompts
        self.genres = list(genres)
        self.template = template
        self.max_tokens = max_tokens

    def extract(self, message: str) -> ExtractionAnswer:
        """The model's reading; raises LLMError (ResponseError when still unusable after
        the re-ask)."""
        return self.extract_call(message)[0]

    def extract_call(self, message: str) -> tuple[ExtractionAnswer, Invocation]:
        """`extract`, and the call's audit record (its usage counts in the turn's trace)."""
        prompt = self.prompts.render(self.template, message=message, genres=self.genres)
        return structured_call(
            self.client, self.prompts, prompt, ExtractionAnswer,
            schema=extraction_schema(self.genres), example=EXTRACTION_EXAMPLE,
            max_tokens=self.max_tokens, temperature=0.0, failure="unusable preference extraction")


def ground(answer: ExtractionAnswer, message: str, parsed: ParsedMessage,
           genres: Sequence[str]) -> tuple[ProfileDelta, list[str]]:
    """Keep only the model's claims the message supports; returns (delta, what was ignored)."""
    ignored: list[str] = []
    titles = _ground_titles(answer, message, parsed, ignored)
    year_min, year_max = _ground_years(answer, message, parsed, ignored)
    rule_genres = {*parsed.delta.include_genres, *parsed.delta.exclude_genres,
                   *parsed.delta.allow_genres}
    both = set(answer.genres) & set(answer.not_genres)
    wished = [g for g in answer.genres if g in set(genres) and g not in both | rule_genres]
    ignored += [f"genre {g} ruled out by the model alone" for g in answer.not_genres
                if g not in rule_genres]
    wish = wish_words(answer.wish)
    if wish and not set(wish.split()) <= set(wish_words(message).split()):
        ignored.append(f"wish {answer.wish!r} uses words the message does not")
        wish = ""
    wishes = [w for w in [wish, " ".join(f"{g} film" for g in wished)] if w]
    return ProfileDelta(liked=titles["liked"], disliked=titles["disliked"],
                        seen=titles["seen"], year_min=year_min, year_max=year_max,
                        wishes=wishes), ignored


def _ground_titles(answer: ExtractionAnswer, message: str, parsed: ParsedMessage,
                   ignored: list[str]) -> dict[str, list[str]]:
    """Titles written in the message, filed under one list only, not read by the rules."""
    said = f" {normalise_title(message)} "
    lists = {"liked": answer.liked, "disliked": answer.disliked, "seen": answer.seen}
    owner: dict[str, set[str]] = {}
    for kind, titles in lists.items():
        for t in titles:
            owner.setdefault(normalise_title(t), set()).add(kind)
    decided = {normalise_title(t) for t in
               (*parsed.delta.liked, *parsed.delta.disliked, *parsed.delta.seen)}
    kept: dict[str, list[str]] = {kind: [] for kind in lists}
    for kind, titles in lists.items():
        for t in titles:
            key = normalise_title(t)
            if not key or f" {key} " not in said:
                ignored.append(f"title {t!r} is not in the message")
            elif len(owner[key]) > 1:
                ignored.append(f"title {t!r} was filed as {' and '.join(sorted(owner[key]))}")
            elif key not in decided and t not in kept[kind]:
                kept[kind].append(t)  # (a title the rules read keeps the rules' reading)
    return kept


def _ground_years(answer: ExtractionAnswer, message: str, parsed: ParsedMessage,
                  ignored: list[str]) -> tuple[int | None, int | None]:
    """Year limits written in the message outside any title, when the rules found none."""
    delta = parsed.delta
    if delta.year_min is not None or delta.year_max is not None or delta.clear_years:
        return None, None  # the rules read the years already
    title_free = message
    for span in parsed.title_spans:
        title_free = title_free.replace(span, " ")
    kept: list[int | None] = []
    for name, value in (("year_min", answer.year_min), ("year_max", answer.year_max)):
        if value is not None and str(value) not in title_free:
            ignored.append(f"{name} {value} is not written in the message")
            value = None
        kept.append(value)
    return kept[0], kept[1]
