"""The fit's LLM scoring, shown as it goes: a progress bar and an estimate of the time left.

Scoring asks the LLM to rank every validation user's candidates, one call each: on a
small CPU that is most of a fit (measured: ~15 minutes for 100 users with a 0.5B model on
two shared cores), so `recagent fit` does it only when asked (`--score-llm`) and then
says after the first call how long the rest will take.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from tqdm import tqdm

from recagent.rank.listwise import LLMRanking, Ranker
from recagent.types import Candidate, Interaction, Item


class ScoringProgress:
    """A ranker that counts its calls on a progress bar (`total`: the users to score) and
    prints, after the first call, the time the rest should take at that pace."""

    def __init__(self, inner: Ranker, total: int, *, stream: TextIO | None = None) -> None:
        self.inner = inner
        self.total = total
        self.stream = stream or sys.stderr
        self.bar = tqdm(total=total, desc="LLM scoring", unit="user", file=self.stream)
        self.calls = 0
        self.started = time.monotonic()

    def rank(self, history: Sequence[tuple[Interaction, Item]],
             candidates: Sequence[Candidate], k: int) -> LLMRanking:
        try:
            return self.inner.rank(history, candidates, k)
        finally:
            self.calls += 1
            self.bar.update(1)
            if self.calls == 1 and self.total > 1:
                each = time.monotonic() - self.started
                left = each * (self.total - 1)
                self.bar.write(f"the first user took {each:.1f} s: about {left / 60:.1f} min "
                               f"for the other {self.total - 1}", file=self.stream)

    def close(self) -> None:
        self.bar.close()
