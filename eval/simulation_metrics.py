"""Simulation results from episode records: success by turn, turns to success, violations.

An episode record (state/<row>.jsonl.gz, one line each) holds its turns, each with whether
the target was among the items shown, the shown items breaking the system's own profile
(`violations`) or the user's stated genre/decade (`off_request`), items outside the
catalog, and the guard's counts. Success at turn t: the target was shown at some turn
<= t (shares of all episodes, so a failed episode counts as 0, never dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.agent_stats import summarise_messages


def success_turn(record: dict[str, Any]) -> int | None:
    """The first turn (1-based) whose list held the target, None if none did."""
    for n, turn in enumerate(record["turns"], 1):
        if turn["hit"]:
            return n
    return None


def summarise_episodes(records: Sequence[dict[str, Any]], max_turns: int) -> dict[str, Any]:
    n = len(records)
    firsts = [success_turn(r) for r in records]
    turns = [t for r in records for t in r["turns"]]
    wins = [f for f in firsts if f is not None]
    messages = [t["extra"] for t in turns if t.get("extra")]
    agent = {"agent": summarise_messages(messages)} if messages else {}
    return {
        "episodes": n,
        **{f"success@{t}": (sum(f is not None and f <= t for f in firsts) / n if n else 0.0)
           for t in range(1, max_turns + 1)},
        "mean_turns_to_success": sum(wins) / len(wins) if wins else None,
        "turns": len(turns),
        "violations": sum(t["violations"] for t in turns),
        "off_request": sum(t["off_request"] for t in turns),
        "out_of_catalog": sum(t["outside"] for t in turns),
        "leaks_caught": sum(t["leaked"] for t in turns),
        "title_stated_to_system": sum(t["stated"] for t in turns),
        "seconds_per_turn": sum(r["seconds"] for r in records) / len(turns) if turns else 0.0,
        **agent,
    }
