"""What the service does for each request, blocking and without HTTP: recommend for a
history, and the chat session's turns, feedback and chip removals.

Every operation comes in two forms, chosen by `fallback`: the product as configured
(the LLM ranks, words explanations and reads messages), and the answer for when the
request's deadline has passed: the same retrieval (the fused non-LLM order) through a
Recommender whose ranker reports the deadline at once, so the facade's own fallback
applies (retrieval order, template explanations, degraded with reason "deadline") and
chat messages are read by the rules alone. Session operations return the changed record
unsaved: only the answer actually sent is saved (`SessionStore.save`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from recagent.chat.lookup import TitleResolver, catalog_genres
from recagent.chat.profile import merge, violations, where_filter
from recagent.chat.session import ChatSession, compose_reply
from recagent.errors import ConfigError, DeadlineError, RecagentError, UnknownItemError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.rank.listwise import LLMRanking
from recagent.recommender import Recommender
from recagent.serve.schemas import (
    FeedbackKind,
    Filters,
    HistoryEntry,
    Message,
    ProfileField,
    SessionRecord,
)
from recagent.serve.sessions import SessionStore
from recagent.serve.views import chip_label, item_view
from recagent.types import (
    Candidate,
    ChatState,
    Interaction,
    Item,
    ItemRef,
    PreferenceProfile,
    ProfileDelta,
    Recommendation,
    ShownItem,
    Trace,
    UserHistory,
)
from retrieval.store import CatalogStore

if TYPE_CHECKING:
    from recagent.agent.agent import Agent

T = TypeVar("T")

FEEDBACK_FIELD: dict[str, ProfileField] = {"like": "liked", "dislike": "disliked",
                                           "seen": "seen"}


class CatalogUnavailable(RecagentError):
    """Chroma did not answer within the request's deadline."""


class DeadlinePassed:
    """The fallback's ranker: the request's deadline has passed, so no LLM is asked and the
    Recommender answers in retrieval order, degraded ("deadline")."""

    def rank(self, history: Sequence[tuple[Interaction, Item]],
             candidates: Sequence[Candidate], k: int) -> LLMRanking:
        raise DeadlineError("the LLM could not answer within the request's deadline "
                            "(busy, slow or failing): the non-LLM order is shown")


@dataclass(frozen=True)
class Outcome:
    """A session operation's result: the record to save, how the list came about, and
    the feedback to log with it."""

    record: SessionRecord
    trace: Trace | None
    feedback: tuple[str, str] | None = None


class Engine:
    """The service's blocking work over one Recommender (as `open_parts` builds it)."""

    def __init__(self, recommender: Recommender, client: LLMClient | None,
                 prompts: PromptLibrary, sessions: SessionStore, *,
                 catalog_retry_s: float = 0.5, catalog_grace_s: float = 1.0,
                 agent: Callable[[], Agent] | None = None,
                 current: Callable[[], Recommender] | None = None) -> None:
        """`current`: the Recommender as of the latest ingest and fit, asked for each
        request (recagent.wiring.live); None: `recommender` throughout."""
        self._make_agent = agent
        self._agent: Agent | None = None
        self.client = client
        self.prompts = prompts
        self.sessions = sessions
        self._current = current
        self._use(recommender)
        self.catalog_retry_s = catalog_retry_s
        self.catalog_grace_s = catalog_grace_s
        """Extra seconds a fallback may wait for Chroma after the deadline has passed."""

    def _use(self, recommender: Recommender) -> None:
        fallback = Recommender(recommender.store, recommender.retriever, DeadlinePassed(),
                               n_candidates=recommender.n_candidates,
                               explainer=recommender.explainer)
        # one assignment: a request running beside a rebuild sees the old set or the new
        self._state = (recommender, fallback, catalog_genres(recommender.store))

    def _fresh(self) -> tuple[Recommender, Recommender, list[str]]:
        if self._current is not None:
            latest = self._current()
            if latest is not self._state[0]:
                self._use(latest)
        return self._state

    @property
    def recommender(self) -> Recommender:
        """The product's Recommender, rebuilt after an ingest or a fit."""
        return self._fresh()[0]

    @property
    def fallback(self) -> Recommender:
        """The same retrieval with a ranker that reports the deadline at once."""
        return self._fresh()[1]

    @property
    def store(self) -> CatalogStore:
        return self._state[0].store

    @property
    def genres(self) -> list[str]:
        return self._fresh()[2]

    @property
    def uses_llm(self) -> bool:
        """Whether an LLM takes part (`open_parts` gives no client when none does); without
        one the deadline's fallback would only redo the same work, so there is none."""
        return self.client is not None

    # ---- recommend for a history -----------------------------------------------------

    def recommend(self, entries: Sequence[HistoryEntry], k: int, filters: Filters | None, *,
                  fallback: bool, deadline: float) -> Recommendation:
        history = to_history(entries)
        where, limits = self._filters(filters)
        recommender = self.fallback if fallback else self.recommender
        return self.with_catalog(
            lambda: recommender.recommend(history, k, where=where, limits=limits),
            self._catalog_deadline(fallback, deadline))

    def _filters(self, filters: Filters | None) -> tuple[dict[str, Any] | None,
                                                          Callable[[Item], list[str]]]:
        if filters is None:
            return None, lambda item: []
        unknown = [g for g in filters.genres if g not in self.genres]
        if unknown:
            raise ConfigError(f"filters.genres: unknown genre(s) {', '.join(unknown)}; the "
                              f"catalog's genres are {', '.join(self.genres)}")
        profile = PreferenceProfile(include_genres=list(dict.fromkeys(filters.genres)),
                                    year_min=filters.year_min, year_max=filters.year_max)
        exclude = set(filters.exclude)

        def limits(item: Item) -> list[str]:
            excluded = ["excluded by the request"] if item.id in exclude else []
            return excluded + violations(item, profile)

        return where_filter(profile), limits

    # ---- chat sessions ---------------------------------------------------------------

    @property
    def agent(self) -> Agent:
        """The agent of agent sessions, built at first use (it loads the catalog once)."""
        if self._make_agent is None:
            raise ConfigError("agent sessions need an LLM, and this service runs without "
                              "one (--no-llm): create the session without \"agent\"")
        if self._agent is None:
            self._agent = self._make_agent()
        return self._agent

    def new_session(self, k: int, agent: bool = False) -> SessionRecord:
        if agent:
            self.agent  # noqa: B018  (a ConfigError now, not at the first message)
        state = ChatState(k=k, profile=PreferenceProfile(), agent=agent)
        return SessionRecord(session_id=uuid.uuid4().hex, state=state.model_dump_json())

    def message(self, session_id: str, text: str, *, fallback: bool,
                deadline: float) -> Outcome:
        record = self.sessions.get(session_id)

        def turn() -> Outcome:
            session = self._session(record, fallback)
            t = session.send(text)
            messages = [*record.messages, Message(role="user", text=t.message),
                        Message(role="assistant", text=t.reply)]
            failed = t.agent is not None and t.agent.degraded
            return self._outcome(record, session.to_json(), t.reply, t.items, t.trace,
                                 messages=messages,
                                 agent_step=t.agent.degraded_step if t.agent and failed
                                 else None)

        return self.with_catalog(turn, self._catalog_deadline(fallback, deadline))

    def feedback(self, session_id: str, item_id: str, kind: FeedbackKind, *, fallback: bool,
                 deadline: float) -> Outcome:
        """Like, dislike or seen: the profile takes it and the list is made again (a seen or
        disliked item is excluded from then on)."""
        record = self.sessions.get(session_id)

        def work() -> Outcome:
            session = self._session(record, fallback)
            item = self.store.get([item_id]).get(item_id)
            if item is None:
                raise UnknownItemError([item_id])
            ref = ItemRef(item_id=item.id, title=item.title, said=item.title[:200], how="id")
            field = FEEDBACK_FIELD[kind]
            profile = merge(session.profile, ProfileDelta(), **{field: [ref]})
            session.last_ref = ref
            done = self._recompute(session, record, profile, [(field, ref)], lead="")
            return Outcome(done.record, done.trace, (item_id, kind))

        return self.with_catalog(work, self._catalog_deadline(fallback, deadline))

    def remove(self, session_id: str, field: ProfileField, value: str, *, fallback: bool,
               deadline: float) -> Outcome:
        """One chip of the profile removed, and the list made again."""
        record = self.sessions.get(session_id)

        def work() -> Outcome:
            session = self._session(record, fallback)
            profile, label = without(session.profile, field, value)
            return self._recompute(session, record, profile, [],
                                   lead=f"Removed \u201c{label}\u201d. ")

        return self.with_catalog(work, self._catalog_deadline(fallback, deadline))

    def _session(self, record: SessionRecord, fallback: bool) -> ChatSession:
        recommender, client = (self.fallback, None) if fallback else (self.recommender,
                                                                       self.client)
        wants = ChatState.model_validate_json(record.state).agent
        agent = self.agent if wants and not fallback else None
        return ChatSession.from_json(record.state, recommender, client, self.prompts,
                                     agent=agent, rules_only=fallback)

    def _recompute(self, session: ChatSession, record: SessionRecord,
                   profile: PreferenceProfile, matched: list[tuple[str, ItemRef]],
                   lead: str) -> Outcome:
        result = session.engine.recommend(profile, session.k)
        session.profile = profile
        if result.items:
            session.shown = [ShownItem(item_id=i.item_id, title=i.title) for i in result.items]
        reply = lead + compose_reply(matched, [], profile, result.items, first=False)
        return self._outcome(record, session.to_json(), reply, result.items, result.trace,
                             messages=record.messages)

    @staticmethod
    def _outcome(record: SessionRecord, state: str, reply: str, items: Sequence[Any],
                 trace: Trace | None, *, messages: Sequence[Message],
                 agent_step: str | None = None) -> Outcome:
        """`agent_step`: where an agent turn failed (its answer is the rules path's)."""
        degraded = trace is not None and trace.degraded
        reason: str | None = trace.degraded_reason if trace is not None and degraded else None
        if agent_step is not None:
            degraded, reason = True, f"agent_{agent_step}"
        updated = record.model_copy(update={
            "state": state, "reply": reply, "items": [item_view(i) for i in items],
            "messages": list(messages), "degraded": degraded, "degraded_reason": reason})
        return Outcome(updated, trace)

    # ---- the catalog -----------------------------------------------------------------

    def search(self, query: str, limit: int) -> list[Item]:
        """Items for a search box: the id or title named exactly first, then the nearest
        items by text."""
        found: dict[str, Item] = dict(self.store.get([query]))
        ref = TitleResolver(self.store).lookup(query)
        if ref is not None:
            found.update(self.store.get([ref.item_id]))
        vector = self.store.embedder.embed([query])[0]
        for item, _, _ in self.store.query(vector, limit):
            found.setdefault(item.id, item)
        return list(found.values())[:limit]

    def catalog_up(self) -> bool:
        """Whether Chroma answers (asked itself: the store's reads come from memory)."""
        try:
            self.store.collection.count()
            return True
        except Exception:
            return False

    def with_catalog(self, work: Callable[[], T], deadline: float) -> T:
        """`work()`, tried again while Chroma is unreachable (a restart), until `deadline`;
        then CatalogUnavailable. Errors of recagent's own, and any error while Chroma
        answers, are raised as they are."""
        while True:
            try:
                return work()
            except RecagentError:
                raise
            except Exception as e:
                if self.catalog_up():
                    raise
                if time.monotonic() + self.catalog_retry_s >= deadline:
                    raise CatalogUnavailable(f"the catalog (Chroma) is unreachable: "
                                             f"{type(e).__name__}: {e}") from e
                time.sleep(self.catalog_retry_s)

    def _catalog_deadline(self, fallback: bool, deadline: float) -> float:
        return time.monotonic() + self.catalog_grace_s if fallback else deadline


def to_history(entries: Sequence[HistoryEntry]) -> UserHistory:
    """The request's history, oldest first; an item named twice is refused by name."""
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        if entry.item_id in seen:
            raise ConfigError(f"history[{n}]: item {entry.item_id} is named more than once")
        seen.add(entry.item_id)
    return UserHistory(interactions=[
        Interaction(item_id=e.item_id, rating=e.rating, liked=e.liked, ts=n)
        for n, e in enumerate(entries)])


def without(profile: PreferenceProfile, field: ProfileField,
            value: str) -> tuple[PreferenceProfile, str]:
    """The profile less one chip, and the chip's label; ConfigError when it has no such
    chip."""
    current = getattr(profile, field)
    if field in ("liked", "disliked", "seen"):
        kept = [r for r in current if r.item_id != value]
        gone = [r for r in current if r.item_id == value]
        new: Any = kept
    elif field in ("year_min", "year_max"):
        gone = [current] if current is not None and str(current) == value else []
        new = None
    else:
        kept = [v for v in current if v != value]
        gone = [v for v in current if v == value]
        new = kept
    if not gone:
        raise ConfigError(f"the profile has no {field} chip with value {value!r}")
    return profile.model_copy(update={field: new}), chip_label(field, gone[0])
