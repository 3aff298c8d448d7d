"""The agent's rows in the conversation and simulation protocols: what each message's plan
did (kept in the state files), its summary, and the paired comparison with the rules chat.

Everything here is computed from the state records alone, so `python -m eval.recompute`
gets the same numbers again. The paired test is scipy's two-sided paired t-test on the
per-unit differences (turn-item pairs for the conversation protocol, episodes for the
simulation), on the units both rows ran.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from recagent.types import ChatTurn

AGENT_ROWS = frozenset({"agent"})
RULES_ROW = "chat"


def message_record(turn: ChatTurn, seconds: float) -> dict[str, Any]:
    """One message of an agent row: its plan, validity, repairs, fallback (its step and
    reason) and time."""
    trace = turn.agent
    if trace is None:
        return {"seconds": seconds, "plan": [], "valid": False, "repairs": [],
                "degraded": "no_agent"}
    return {"seconds": round(seconds, 4), "plan": [s.tool for s in trace.plan],
            "valid": trace.valid, "repairs": [r.kind for r in trace.repairs],
            "degraded": trace.degraded_step, "reason": trace.degraded_reason,
            "plan_seconds": round(trace.plan_latency_s, 4),
            "tokens": trace.prompt_tokens + trace.completion_tokens}


def summarise_messages(messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Plan validity (before repair), repairs by kind, fallbacks by step, latency."""
    n = len(messages)
    planned = [m for m in messages if m["degraded"] != "plan"]
    seconds = np.asarray([m["seconds"] for m in messages], dtype=float)
    repairs = Counter(k for m in messages for k in m["repairs"])
    structural = [m for m in planned if set(m["repairs"]) - {"ungrounded"}]
    return {
        "messages": n,
        "plans": len(planned),
        "valid_plans": sum(m["valid"] for m in planned),
        "valid_share": sum(m["valid"] for m in planned) / len(planned) if planned else 0.0,
        "repaired_plans": len(structural),
        "repairs": dict(sorted(repairs.items())),
        "fallbacks": dict(sorted(Counter(m["degraded"] for m in messages
                                         if m["degraded"]).items())),
        "seconds_p50": float(np.percentile(seconds, 50)) if n else 0.0,
        "seconds_p95": float(np.percentile(seconds, 95)) if n else 0.0,
    }


def paired(agent: Sequence[float], rules: Sequence[float]) -> dict[str, Any]:
    """agent - rules on the same units: means, the mean difference with its 95% interval,
    and the two-sided paired t-test's p (1.0 when every difference is 0)."""
    a, b = np.asarray(agent, dtype=float), np.asarray(rules, dtype=float)
    n = len(a)
    diff = a - b
    if n < 2 or not diff.any():
        p, half = 1.0, 0.0
    else:
        result = stats.ttest_rel(a, b)
        p = float(result.pvalue) if math.isfinite(result.pvalue) else 1.0
        half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    mean = float(diff.mean()) if n else 0.0
    return {"n": n, "agent": float(a.mean()) if n else 0.0,
            "rules": float(b.mean()) if n else 0.0, "diff": mean,
            "ci95": [mean - half, mean + half], "p": p,
            "better": bool(mean > 0 and p < 0.05), "worse": bool(mean < 0 and p < 0.05)}


def conversation_paired(agent: Mapping[str, list[str]], rules: Mapping[str, list[str]],
                        pairs: Mapping[str, tuple[str, str, bool]]) -> dict[str, Any]:
    """Hit@10 and hit@50 per turn-item pair (its mean is iEvaLM's Recall@k), on the pairs
    whose turn both rows answered, all targets and the unmentioned ones."""
    out: dict[str, Any] = {}
    for view in ("all", "unmentioned"):
        scope = [(turn, item) for turn, item, said in pairs.values()
                 if turn in agent and turn in rules and not (view == "unmentioned" and said)]
        for k in (10, 50):
            out[f"{view}_recall@{k}"] = paired(
                [float(item in agent[turn][:k]) for turn, item in scope],
                [float(item in rules[turn][:k]) for turn, item in scope])
    return out


def simulation_paired(agent: Sequence[dict[str, Any]], rules: Sequence[dict[str, Any]],
                      max_turns: int) -> dict[str, Any]:
    """Success within `max_turns` per episode, on the episodes both rows ran."""
    by_rules = {r["episode"]: r for r in rules}
    both = [(r, by_rules[r["episode"]]) for r in agent if r["episode"] in by_rules]

    def won(record: dict[str, Any]) -> float:
        return float(any(t["hit"] for t in record["turns"][:max_turns]))

    return {f"success@{max_turns}": paired([won(a) for a, _ in both],
                                           [won(b) for _, b in both])}
