"""Terminal input and output for `recagent chat`: reading messages, printing turns."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from recagent.errors import ConfigError
from recagent.types import ChatTurn

QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit"})


def script_messages(path: Path) -> list[str]:
    """One message per non-blank line; lines starting with '#' are comments."""
    if not path.is_file():
        raise ConfigError(f"--script {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def typed_messages() -> Iterator[str]:
    """Messages typed at a `you>` prompt until an empty line, 'quit' or end of input."""
    print('Tell me what you like (e.g. "I loved Alien and Heat, nothing before 1990"); '
          "an empty line or Ctrl-D ends.", file=sys.stderr)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            return
        if not line or line.lower() in QUIT_WORDS:
            return
        yield line


def print_turn(turn: ChatTurn) -> None:
    """The reply, the numbered list with reasons, and notes (to stderr)."""
    print(f"\n{turn.reply}\n")
    width = max((len(i.title) for i in turn.items), default=10)
    for n, item in enumerate(turn.items, 1):
        print(f"{n:>2}. {item.title:<{width}}  [{item.item_id}]")
        print(f"    {item.explanation}")
    notes = list(turn.notes)
    if turn.agent is not None and turn.agent.plan:
        plan = " \u2192 ".join(step.tool for step in turn.agent.plan)
        fixed = f", {len(turn.agent.repairs)} repair(s)" if turn.agent.repairs else ""
        notes.append(f"plan: {plan} ({'valid' if turn.agent.valid else 'repaired'}{fixed}; "
                     f"{turn.agent.latency_s:.1f} s)")
    agent_failed = turn.agent is not None and turn.agent.degraded  # its note says so
    if turn.degraded and not agent_failed:
        notes.append("degraded: the model's ranking failed, shown in retrieval order")
    for note in notes:
        print(f"  note: {note}", file=sys.stderr)
    print(flush=True)
