"""The explanation step: evidence → (LLM sentence → checker | template) for a chosen list.

Runs after the gate has chosen the items. Every item gets its evidence; with an LLM, one
call words the whole list and each sentence ships only if the checker passes it, else a
template from the same evidence replaces it (the failures recorded); without one, the
template is the explanation. Every shipped sentence, template or not, has passed the
checker against the sentences before it in the list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from recagent.errors import ConfigError
from recagent.explain import templates
from recagent.explain.checker import Checker, Worded
from recagent.explain.evidence import MAX_LINKS, CoLikes, gather, genre_vocabulary
from recagent.explain.wording import TEMPLATE, evidence_lines, write
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.llm.structured import StructuredResponseError
from recagent.types import (
    Candidate,
    Degradation,
    Evidence,
    ExplanationCounts,
    ExplanationFailure,
    ExplanationRecord,
    Interaction,
    Invocation,
    Item,
)

log = logging.getLogger(__name__)

Check = Callable[[str], list[ExplanationFailure]]


@dataclass(frozen=True)
class Explained:
    """The explanations of one list, in its order, and how each came about."""

    sentences: list[str]
    evidence: list[Evidence]
    records: list[ExplanationRecord]
    invocation: Invocation | None = None
    """The wording call, when one was made (also when its answer was unusable)."""
    counts: ExplanationCounts = field(default_factory=ExplanationCounts)
    failure: Degradation | None = None
    """The wording step asked for that failed (the call, or skipped: `use_llm` False)."""


LLM_ITEMS = 3
"""Items the LLM words by default: the top of the list, where a reader looks first."""


class Explainer:
    """Explains a chosen list from evidence. `client` None: templates only (no LLM cost).

    `stats`: who liked what (co-liked shares, popularity), from positive (user, item)
    pairs; `genres` and `titles`: the catalog's genre names and titles, so the checker
    also catches genres and titles that this request's items do not mention."""

    def __init__(
        self,
        client: LLMClient | None = None,
        prompts: PromptLibrary | None = None,
        *,
        stats: CoLikes | None = None,
        genres: Iterable[str] = (),
        titles: Iterable[str] = (),
        template: str = TEMPLATE,
        max_links: int = MAX_LINKS,
        llm_items: int | None = LLM_ITEMS,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.client = client
        self.prompts = prompts if prompts is not None else PromptLibrary()
        if client is not None:
            self.prompts.check([template])
        self.stats = stats
        self.checker = Checker(genres, titles)
        self.template = template
        self.max_links = max_links
        self.llm_items = llm_items
        """The LLM words the first this many items (None: all); the rest get templates.
        Decoding is most of a request's time on a CPU: about 70 tokens per sentence."""
        self.temperature = temperature
        self.seed = seed

    def explain(
        self,
        chosen: Sequence[Candidate],
        history: Sequence[tuple[Interaction, Item]],
        *,
        user_id: str | None = None,
        others: Sequence[Candidate] = (),
        use_llm: bool = True,
        skipped: Degradation | None = None,
    ) -> Explained:
        """Explanations for `chosen` (the final list, in order). `others` are the rest of
        the request's candidates (titles the checker should know); `use_llm` False skips
        the LLM (e.g. the ranker's call just timed out; `skipped` says why, and is this
        step's failure when it had an LLM). A ConfigError is raised; any other failure of
        the call falls back to templates, recorded as 'llm_failed' and in `failure`."""
        evidence = gather(chosen, history, stats=self.stats, user_id=user_id,
                          max_links=self.max_links)
        items = [item for _, item in history]
        request_items = [c.item for c in (*chosen, *others)]
        scope = self.checker.scope(items, [i.title for i in request_items],
                                   genre_vocabulary(request_items))
        proposed: dict[int, str] | None = None
        invocation: Invocation | None = None
        call_failure: ExplanationFailure | None = None
        failure: Degradation | None = None
        if self.client is not None and not use_llm and evidence:
            failure = skipped or Degradation(step="explain", reason="error",
                                             detail="the wording call was not made")
        if self.client is not None and use_llm and evidence:
            try:
                proposed, invocation = write(
                    self.client, self.prompts, evidence[:self.llm_items], template=self.template,
                    temperature=self.temperature, seed=self.seed)
            except ConfigError:
                raise
            except Exception as error:  # the list still ships, explained by templates
                log.warning("explanations unusable, writing them from templates: %s", error)
                if isinstance(error, StructuredResponseError):
                    invocation = error.invocation
                call_failure = ExplanationFailure(
                    kind="llm_failed", detail=f"{type(error).__name__}: {error}")
                failure = Degradation.of("explain", error)
        shipped: list[str] = []
        records: list[ExplanationRecord] = []
        lines = evidence_lines(self.prompts, evidence[:self.llm_items]) if proposed else []
        cut_off = invocation is not None and invocation.finish_reason == "length"
        for n, e in enumerate(evidence):
            def check(text: str, e: Evidence = e) -> list[ExplanationFailure]:
                return self.checker.check_in(text, e, scope, earlier=shipped)

            item_id = e.item_id
            worded = self.llm_items is None or n < self.llm_items
            if (proposed is None and call_failure is None) or not worded:
                shipped.append(self._template(e, n, check))
                records.append(ExplanationRecord(item_id=item_id, kind="template"))
                continue
            sentence = proposed.get(n) if proposed is not None else None
            if sentence is None:
                failures = [call_failure or ExplanationFailure(
                    kind="missing", detail=f"the answer had no sentence for {e.title!r}")]
            else:  # an LLM sentence: true to the evidence, and of the form asked for
                failures = self.checker.check_in(
                    sentence, e, scope, earlier=shipped,
                    worded=Worded(lines[n] if n < len(lines) else (), cut_off))
            if not failures and sentence is not None:
                shipped.append(sentence)
                records.append(ExplanationRecord(item_id=item_id, kind="llm"))
            else:
                shipped.append(self._template(e, n, check))
                records.append(ExplanationRecord(item_id=item_id, kind="replaced",
                                                 failures=failures, rejected=sentence))
        kinds = [r.kind for r in records]
        counts = ExplanationCounts(llm=kinds.count("llm"), replaced=kinds.count("replaced"),
                                   template=kinds.count("template"))
        return Explained(shipped, evidence, records, invocation, counts, failure)

    @staticmethod
    def _template(evidence: Evidence, position: int, check: Check) -> str:
        """The first template sentence the checker passes (the last one, naming the
        catalog id, is unique in any list)."""
        options = templates.sentences(evidence, position)
        for sentence in options:
            if not check(sentence):
                return sentence
        log.warning("no template passed the checker for %r: %s", evidence.item_id,
                    check(options[-1]))
        return options[-1]
