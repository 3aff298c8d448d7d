"""Recompute a conversation or simulation report from its folder alone.

Conversation: the pairs (`trec/pairs.tsv.gz`) and each row's lists (`state/<row>.jsonl.gz`)
give every metric and gate count again through the same ranx path; each run file
(`trec/<row>.run.gz`) must hold the same lists. Simulation: the episodes
(`state/<row>.jsonl.gz`) give success@turn, mean turns and violations again.
Everything is compared with metrics.json; `python -m eval.recompute` calls this when the
config's protocol is one of these.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

from eval.agent_stats import AGENT_ROWS, RULES_ROW, simulation_paired
from eval.conversation import add_paired, row_lists, summarise_row
from eval.conversation_config import ConversationProtocol, load_conversation_config
from eval.conversation_report import read_pairs, state_records
from eval.simulation_metrics import summarise_episodes

TOLERANCE = 1e-9


def _compare(prefix: str, expected: Any, got: Any, problems: list[str]) -> None:
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in expected.keys() | got.keys():
            if key not in got or key not in expected:
                where = "metrics.json" if key in expected else "the recompute"
                problems.append(f"{prefix}.{key}: only in {where}")
                continue
            _compare(f"{prefix}.{key}", expected[key], got[key], problems)
    elif isinstance(expected, int | float) and isinstance(got, int | float):
        if not math.isclose(float(expected), float(got), rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            problems.append(f"{prefix}: metrics.json {expected} != recomputed {got}")
    elif expected != got:
        problems.append(f"{prefix}: metrics.json {expected!r} != recomputed {got!r}")


def _run_lists(path: Path) -> dict[str, list[str]]:
    ranked: dict[str, list[tuple[int, str]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            turn, _, item, rank, _, _ = line.split()
            ranked.setdefault(turn, []).append((int(rank), item))
    return {t: [i for _, i in sorted(r)] for t, r in ranked.items()}


def recompute(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """The recomputed rows, and every disagreement with metrics.json or the run files."""
    config = load_conversation_config(folder / "config.toml")
    expected = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    problems: list[str] = []
    got: dict[str, Any] = {}
    if isinstance(config.protocol, ConversationProtocol):
        pairs = read_pairs(folder)
        for row in expected["rows"]:
            records = list(state_records(folder, row))
            got[row] = summarise_row(records, pairs, config.protocol.k)
            lists = {t["turn"]: t["items"] for r in records for t in r["turns"]}
            run = _run_lists(folder / "trec" / f"{row}.run.gz")
            if {t: v for t, v in lists.items() if v} != run:
                problems.append(f"{row}: trec/{row}.run.gz does not hold the state's lists")
        add_paired(got, {row: row_lists(folder, row) for row in got}, pairs)
    else:
        for row in expected["rows"]:
            got[row] = summarise_episodes(list(state_records(folder, row)),
                                          config.protocol.max_turns)
        for row in got:
            if row in AGENT_ROWS and RULES_ROW in got:
                got[row]["vs_chat"] = simulation_paired(
                    list(state_records(folder, row)), list(state_records(folder, RULES_ROW)),
                    config.protocol.max_turns)
    _compare("rows", expected["rows"], got, problems)
    return got, problems


def main(folder: Path) -> int:
    """Exit 0 when every number matches, 1 on a mismatch (each printed)."""
    got, problems = recompute(folder)
    print(json.dumps(got, indent=1))
    for p in problems:
        print(f"MISMATCH {p}")
    if problems:
        print(f"{len(problems)} mismatch(es) against {folder / 'metrics.json'}")
        return 1
    print(f"every recomputed number matches {folder / 'metrics.json'}")
    return 0
