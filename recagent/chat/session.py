"""A recommendation conversation: each message refines one preference profile.

A turn: read the message twice, by the LLM into a bounded schema and by rules that
know the catalog's vocabulary (the rules win; the model's claims must be grounded in
the words) → look named titles up in the catalog → merge into the profile →
retrieve with the profile's filters → rank and explain through the Recommender →
check every hard constraint again → a short reply that refers to the list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from recagent.chat.extract import LLMExtractor, ground
from recagent.chat.lookup import TitleResolver, catalog_genres, normalise_title
from recagent.chat.parse import parse_message
from recagent.chat.profile import describe, merge
from recagent.chat.profile_recommend import ProfileRecommender
from recagent.errors import ConfigError, EmptyCatalogError, LLMError, ResponseError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import (
    MESSAGE_MAX_CHARS,
    ChatState,
    ChatTurn,
    Degradation,
    ItemRef,
    PreferenceProfile,
    ProfileDelta,
    RankedItem,
    ShownItem,
    Trace,
    Usage,
)

if TYPE_CHECKING:
    from recagent.agent.agent import Agent

log = logging.getLogger(__name__)
KINDS = ("liked", "disliked", "seen")


def check_message(message: str, max_chars: int = MESSAGE_MAX_CHARS) -> str:
    """The message, stripped; a clear ConfigError when it is empty or too long."""
    text = message.strip()
    if not text:
        raise ConfigError("the message is empty: say what you like, or what to change")
    if len(text) > max_chars:
        raise ConfigError(f"the message has {len(text)} characters; the limit is {max_chars}. "
                          "Shorten it, or say it over several turns.")
    return text


class ChatSession:
    """A conversation over one Recommender; `send` a message, get a ChatTurn back.

    `client` reads messages into the profile schema (None: rules only); ranking and
    explanations come from the recommender's own ranker. With an `agent`, the agent's
    planner is the turn's one LLM call instead (the rules still read the message), and
    its tools make the list (recagent/agent)."""

    def __init__(
        self,
        recommender: Recommender,
        client: LLMClient | None,
        prompts: PromptLibrary,
        *,
        k: int = 5,
        max_message_chars: int = MESSAGE_MAX_CHARS,
        genres: Sequence[str] | None = None,
        agent: Agent | None = None,
    ) -> None:
        if not 1 <= k <= 50:
            raise ConfigError(f"k must be between 1 and 50, got {k}")
        if recommender.store.count() == 0:
            raise EmptyCatalogError("the catalog is empty; run `recagent ingest` to load items "
                                    "before chatting")
        self.recommender = recommender
        self.client = client
        self.prompts = prompts
        self.k = k
        self.max_message_chars = max_message_chars
        self.genres = list(genres) if genres is not None else catalog_genres(recommender.store)
        self.resolver = TitleResolver(recommender.store)
        self.agent = agent
        self.keeps_agent = agent is not None
        """Saved as an agent session (also while a fallback answers by rules alone)."""
        self.extractor = (LLMExtractor(client, prompts, self.genres)
                          if client and agent is None else None)
        self.engine = ProfileRecommender(recommender)
        self.profile = PreferenceProfile()
        self.shown: list[ShownItem] = []
        self.last_ref: ItemRef | None = None
        self.turns = 0

    def send(self, message: str) -> ChatTurn:
        """One turn. Raises ConfigError for an empty or over-long message."""
        text = check_message(message, self.max_message_chars)
        parsed = parse_message(text, self.genres)
        notes: list[str] = []
        model_delta = ProfileDelta()
        failed: list[Degradation] = []
        spent = Usage()
        if self.extractor is not None:
            try:
                answer, call = self.extractor.extract_call(text)
                spent = call.usage
                model_delta, ignored = ground(answer, text, parsed, self.genres)
                log.info("ignored from the model's reading: %s", ignored)
            except LLMError as e:
                notes.append(f"the model could not read the message ({e}); used rules only")
                failed.append(Degradation.of("extract", e))
                if isinstance(e, ResponseError) and e.usage is not None:
                    spent = Usage(prompt_tokens=e.usage.prompt_tokens,
                                  completion_tokens=e.usage.completion_tokens)
        matched: list[tuple[str, ItemRef]] = []
        unresolved: list[str] = []
        profile = self.profile
        for delta, report in ((model_delta, []), (parsed.delta, unresolved)):
            refs = self._resolve(delta, matched, report)  # rules last: they win conflicts
            profile = merge(profile, delta, **refs)
        self.profile = profile
        if matched:
            self.last_ref = matched[-1][1]
        if self.agent is not None:
            return self._agent_turn(text, profile, matched, unresolved, notes, failed, spent)
        result = self.engine.recommend(profile, self.k)
        if result.items:
            self.shown = [ShownItem(item_id=i.item_id, title=i.title) for i in result.items]
        self.turns += 1
        trace = with_steps(result.trace, failed, spent)
        return ChatTurn(
            message=text,
            reply=compose_reply(matched, unresolved, profile, result.items, self.turns == 1),
            items=result.items,
            profile=profile,
            matched=[ref for _, ref in matched],
            unresolved=unresolved,
            notes=notes + result.notes,
            degraded=trace is not None and trace.degraded,
            trace=trace,
        )

    def _agent_turn(self, text: str, profile: PreferenceProfile,
                    matched: list[tuple[str, ItemRef]], unresolved: list[str],
                    notes: list[str], failed: list[Degradation], spent: Usage) -> ChatTurn:
        assert self.agent is not None
        outcome = self.agent.turn(text, profile, self.shown, self.k)
        agent = outcome.trace
        if agent.degraded:  # the plan or a tool failed: the rules path answered
            failed = [*failed, Degradation(
                step="plan", reason="deadline" if agent.degraded_step == "deadline" else "error",
                detail=f"agent {agent.degraded_step}: {agent.degraded_reason}")]
        trace = with_steps(outcome.result.trace, failed, spent)
        self.profile = outcome.profile
        named = {ref.item_id for _, ref in matched}
        matched += [("liked", r) for r in outcome.profile.liked
                    if r.item_id in outcome.seeds and r.item_id not in named]
        if matched:
            self.last_ref = matched[-1][1]
        if outcome.items:
            self.shown = [ShownItem(item_id=i.item_id, title=i.title) for i in outcome.items]
        self.turns += 1
        return ChatTurn(
            message=text,
            reply=compose_reply(matched, unresolved, outcome.profile, outcome.items,
                                self.turns == 1),
            items=outcome.items,
            profile=outcome.profile,
            matched=[ref for _, ref in matched],
            unresolved=unresolved,
            notes=notes + outcome.notes,
            degraded=outcome.degraded or (trace is not None and trace.degraded),
            trace=trace,
            agent=outcome.trace,
        )

    def _resolve(self, delta: ProfileDelta, matched: list[tuple[str, ItemRef]],
                 unresolved: list[str]) -> dict[str, list[ItemRef]]:
        refs: dict[str, list[ItemRef]] = {kind: [] for kind in KINDS}
        for kind in KINDS:
            for phrase in getattr(delta, kind):
                found, missing = self.resolver.resolve(phrase, shown=self.shown,
                                                       last_ref=self.last_ref)
                refs[kind] += found
                matched += [(kind, r) for r in found
                            if (kind, r.item_id) not in {(k, m.item_id) for k, m in matched}]
                unresolved += [m for m in missing if m not in unresolved]
        return refs

    # ---- saving and restoring --------------------------------------------------------

    def to_json(self) -> str:
        """The session state (profile, last list, turn count) as JSON."""
        state = ChatState(k=self.k, profile=self.profile, shown=self.shown,
                          last_ref=self.last_ref, turns=self.turns,
                          agent=self.keeps_agent or self.agent is not None)
        return state.model_dump_json(indent=2)

    @classmethod
    def from_json(
        cls,
        data: str,
        recommender: Recommender,
        client: LLMClient | None,
        prompts: PromptLibrary,
        *,
        k: int | None = None,
        max_message_chars: int = MESSAGE_MAX_CHARS,
        agent: Agent | None = None,
        rules_only: bool = False,
    ) -> ChatSession:
        """A session restored from `to_json`; every item it names must be in the catalog.
        A session saved as an agent session needs its `agent` back (ConfigError without),
        unless `rules_only` (a fallback answer: the rules path, and the session stays an
        agent session when saved)."""
        try:
            state = ChatState.model_validate_json(data)
        except ValidationError as e:
            raise ConfigError(f"not a saved chat session: {e.error_count()} problem(s), "
                              f"first: {e.errors()[0]['msg']}") from None
        p = state.profile
        named = [r.item_id for r in (*p.liked, *p.disliked, *p.seen)]
        named += [s.item_id for s in state.shown]
        named += [state.last_ref.item_id] if state.last_ref else []
        known = recommender.store.get(named)
        unknown = sorted({i for i in named if i not in known})
        if unknown:
            raise ConfigError(f"the saved session names items this catalog does not hold: "
                              f"{', '.join(unknown[:10])}")
        if state.agent and agent is None and not rules_only:
            raise ConfigError("this session was an agent session: resume it with the agent "
                              "(`--agent`, or an LLM configured for the service)")
        session = cls(recommender, client, prompts, k=k or state.k,
                      max_message_chars=max_message_chars, agent=agent)
        session.profile = state.profile
        session.shown = list(state.shown)
        session.last_ref = state.last_ref
        session.turns = state.turns
        session.keeps_agent = state.agent
        return session


def with_steps(trace: Trace | None, failed: Sequence[Degradation],
               spent: Usage) -> Trace | None:
    """The turn's trace with the steps before the recommendation (extraction, the agent's
    plan): their failures among its degradations, their tokens in its usage."""
    if not failed and spent == Usage():
        return trace
    out = (trace or Trace()).degrade(*failed)
    return out.model_copy(update={"usage": spent + out.usage})


def compose_reply(
    matched: Sequence[tuple[str, ItemRef]],
    unresolved: Sequence[str],
    profile: PreferenceProfile,
    items: Sequence[RankedItem],
    first: bool,
) -> str:
    """A few plain sentences: what was understood, the limits, and the list in brief."""
    lines: list[str] = []
    if matched:
        by_kind: dict[str, list[str]] = {}
        for kind, ref in matched:
            shown = ref.title
            if normalise_title(ref.said) != normalise_title(ref.title):
                shown = f"\u201c{ref.said}\u201d \u2192 {ref.title}"
            by_kind.setdefault(kind, []).append(shown)
        lines.append("Noted \u2014 " + "; ".join(f"{kind}: {', '.join(titles)}"
                                                for kind, titles in by_kind.items()) + ".")
    if unresolved:
        lines.append("Not found in the catalog: "
                     + ", ".join(f"\u201c{u}\u201d" for u in unresolved) + ".")
    limits = describe(profile)
    if not items:
        lines.append("Nothing in the catalog fits all of that"
                     + (f" ({'; '.join(limits)})" if limits else "")
                     + ". Loosen a limit, e.g. \u201cany year\u201d or \u201chorror is fine\u201d.")
        return " ".join(lines)
    if limits:
        lines.append(f"Limits: {'; '.join(limits)}.")
    top = items[0]
    lines.append(f"Here are {len(items)} picks, best first; #1 is {top.title}: "
                 f"{top.explanation.rstrip('.')}.")
    if first:
        lines.append("Refine with \u201cmore like #2\u201d, \u201cI've seen #1\u201d, "
                     "\u201cno horror\u201d or \u201cnothing before 1990\u201d.")
    return " ".join(lines)
