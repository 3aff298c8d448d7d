"""The executor: run a checked plan's tools in order, each within its own time budget and
all within the turn's deadline, and record every call.

A tool runs in a worker thread; the executor stops waiting at the tool's budget (or the
deadline, whichever comes first) and raises ToolTimeout. The abandoned call cannot touch
the turn: tools return new states, and its result is dropped. A tool that raises, or runs
out of time, ends the plan: the caller falls back to the rules path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from recagent.agent.tools import Tool, TurnState
from recagent.agent.types import Step, ToolCall, ToolName
from recagent.errors import DeadlineError, RecagentError

DEFAULT_BUDGETS_S: dict[ToolName, float] = {
    "find_titles": 5.0, "facts": 5.0, "filter": 10.0, "similar_to": 15.0,
    "recommend": 120.0, "explain": 5.0,
}
"""Seconds each tool may take: recommend includes the product's ranking and the LLM's
explanation of the top item, the slowest part on a CPU."""


class ToolFailed(RecagentError):
    """A tool raised; `step` and `tool` say which, the message what."""

    def __init__(self, message: str, step: int, tool: ToolName,
                 calls: Sequence[ToolCall] = ()) -> None:
        super().__init__(message)
        self.step, self.tool, self.calls = step, tool, list(calls)


class ToolTimeout(DeadlineError):
    """A tool ran past its budget or the turn's deadline."""

    def __init__(self, message: str, step: int, tool: ToolName,
                 calls: Sequence[ToolCall] = ()) -> None:
        super().__init__(message)
        self.step, self.tool, self.calls = step, tool, list(calls)


@dataclass(frozen=True)
class Executed:
    state: TurnState
    calls: list[ToolCall]


class Executor:
    """Runs plans over `tools` (one per tool name)."""

    def __init__(self, tools: Mapping[ToolName, Tool], *,
                 budgets_s: Mapping[ToolName, float] | None = None) -> None:
        self.tools = dict(tools)
        self.budgets_s = {**DEFAULT_BUDGETS_S, **(budgets_s or {})}

    def run(self, steps: Sequence[Step], state: TurnState, deadline: float) -> Executed:
        """The state after every step; raises ToolFailed or ToolTimeout, each carrying
        the calls made before it."""
        calls: list[ToolCall] = []
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-tool")
        try:
            for n, step in enumerate(steps):
                left = deadline - time.monotonic()
                budget = min(self.budgets_s[step.tool], left)
                if budget <= 0:
                    raise ToolTimeout(f"the turn's deadline passed before step {n} "
                                      f"({step.tool})", n, step.tool, calls)
                start = time.perf_counter()
                future = pool.submit(self.tools[step.tool], state, step.args, n)
                try:
                    new, said = future.result(timeout=budget)
                except FutureTimeout:
                    raise ToolTimeout(f"{step.tool} took more than {budget:.1f} s",
                                      n, step.tool, calls) from None
                except Exception as e:
                    raise ToolFailed(f"{step.tool} failed: {type(e).__name__}: {e}",
                                     n, step.tool, calls) from e
                before = -1 if state.buffer is None else len(state.buffer)
                after = -1 if new.buffer is None else len(new.buffer)
                calls.append(ToolCall(tool=step.tool, args=step.args.model_dump(),
                                      buffer_in=before, buffer_out=after,
                                      latency_s=round(time.perf_counter() - start, 4),
                                      result=said))
                state = new
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return Executed(state, calls)

