"""The conversation report folder: what `python -m eval.recompute` needs, and the tables.

- `config.toml`: the config as run (its judgement rule was committed before the run);
- `trec/pairs.tsv.gz`: every turn-item pair (pair, turn, item, mentioned 0/1);
  `trec/qrels.txt.gz` and `trec/qrels_unmentioned.txt.gz`: the two views as TREC qrels;
- `trec/<row>.run.gz`: each row's list per turn (TREC run: turn Q0 item rank score row);
- `state/<row>.jsonl.gz`: per dialogue, its turns' lists, gate counts and seconds;
- `metrics.json`, `metrics.md`: the numbers, published ones beside them, the verdict and
  examples of turns the judged row gets right and wrong.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from eval.conversation_metrics import METRICS, VIEWS, Pairs, qrels
from eval.dialogues import DialogueTurn
from eval.report import write_gzip
from eval.results import json_lines
from recagent.types import Item

PAIRS = "pairs.tsv.gz"
QRELS_FILES = {"all": "qrels.txt.gz", "unmentioned": "qrels_unmentioned.txt.gz"}
STATE_SUFFIX = ".jsonl"
N_EXAMPLES = 4


def state_records(folder: Path, row: str) -> Iterator[dict[str, Any]]:
    """A row's per-unit records: the finished (gzipped) file, then any being written (less
    any line a kill cut short; its unit runs again)."""
    finished = folder / "state" / f"{row}{STATE_SUFFIX}.gz"
    if finished.is_file():
        with gzip.open(finished, "rt", encoding="utf-8") as f:
            yield from (json.loads(line) for line in f if line.strip())
    written = folder / "state" / f"{row}{STATE_SUFFIX}"
    if written.is_file():
        yield from json_lines(written)


def read_pairs(folder: Path) -> Pairs:
    path = folder / "trec" / PAIRS
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return {p: (turn, item, said == "1") for p, turn, item, said in rows}


def write_conversation_report(summary: dict[str, Any], out: Path, config_text: str,
                              turns: Sequence[DialogueTurn], pairs: Pairs,
                              items: dict[str, Item], mentioned: dict[str, list[str]],
                              judged: str) -> None:
    trec, state = out / "trec", out / "state"
    trec.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config_text, encoding="utf-8")
    write_gzip(trec / PAIRS, "".join(f"{p}\t{t}\t{i}\t{int(m)}\n"
                                     for p, (t, i, m) in pairs.items()))
    for view, name in QRELS_FILES.items():
        write_gzip(trec / name, "".join(f"{p} 0 {i} 1\n" for p, rel in qrels(pairs, view).items()
                                        for i in rel))
    lists: dict[str, dict[str, list[str]]] = {}
    for row in summary["rows"]:
        records = list(state_records(out, row))
        write_gzip(state / f"{row}{STATE_SUFFIX}.gz",
                   "".join(json.dumps(r) + "\n" for r in records))
        (state / f"{row}{STATE_SUFFIX}").unlink(missing_ok=True)
        lists[row] = {t["turn"]: t["items"] for r in records for t in r["turns"]}
        write_gzip(trec / f"{row}.run.gz", "".join(
            f"{turn} Q0 {item} {n + 1} {len(ranked) - n} {row}\n"
            for turn, ranked in lists[row].items() for n, item in enumerate(ranked)))
    summary["examples"] = examples(turns, lists.get(judged, {}), items, mentioned)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "metrics.md").write_text(markdown(summary, judged), encoding="utf-8")


def examples(turns: Sequence[DialogueTurn], lists: dict[str, list[str]],
             items: dict[str, Item], mentioned: dict[str, list[str]]) -> dict[str, Any]:
    """A few turns the judged row gets right (a target not mentioned, in its top 10) and
    wrong (no target in its top 50), first ones in file order."""
    right: list[dict[str, Any]] = []
    wrong: list[dict[str, Any]] = []
    for t in turns:
        ranked = lists.get(t.key)
        if ranked is None:
            continue
        new = [i for i in t.targets if i not in set(mentioned.get(t.key, ()))]
        case = {"turn": t.key, "seeker": t.context[-1][:300],
                "targets": [items[i].title for i in t.targets],
                "top5": [items[i].title for i in ranked[:5] if i in items]}
        if new and any(i in ranked[:10] for i in new) and len(right) < N_EXAMPLES:
            right.append(case | {"hit_rank": min(ranked.index(i) + 1 for i in new
                                                 if i in ranked[:10])})
        elif not any(i in ranked for i in t.targets) and len(wrong) < N_EXAMPLES:
            wrong.append(case)
    return {"right": right, "wrong": wrong}


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(summary: dict[str, Any], judged: str) -> str:
    d = summary["data"]
    lines = [
        f"# Conversation protocol ({d['turns']} test turns of {d['dialogues']} dialogues, "
        f"{d['pairs']} turn-item pairs; {d['mentioned_pairs']} pairs name an item already "
        "mentioned in the context)", "",
        "Recall@k, NDCG@10 and MRR per turn-item pair as iEvaLM counts them; each row returns "
        f"{summary['k']} items per turn.", ""]
    titles = {"all": "All targets", "unmentioned": "Targets not mentioned in the context"}
    for view in VIEWS:
        lines += [f"## {titles[view]}", "",
                  "| row | R@1 | R@10 | R@50 | NDCG@10 | MRR | pairs | turns | outside catalog "
                  "| violated constraints | s/turn |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, row in summary["rows"].items():
            m = row[view]
            lines.append(f"| {name} | " + " | ".join(_f(m[k]) for k in METRICS)
                         + f" | {m['pairs']} | {row['turns']} | {row['out_of_catalog']} | "
                         f"{row['violations']} | {row['seconds_per_turn']:.3f} |")
        if view == "all":
            for p in summary["published"]:
                lines.append(f"| {p['system']} (published: {p['source']}) | "
                             f"{_f(p['recall_1'])} | {_f(p['recall_10'])} | "
                             f"{_f(p['recall_50'])} | - | - | - | - | - | - | - |")
        lines.append("")
    if summary["published"]:
        lines += ["Published rows: " + "; ".join(f"{p['system']}: {p['protocol']}"
                                                 for p in summary["published"]), ""]
    v = summary["verdict"]
    lines += ["## Verdict", "", f"Rule (written before the run): {v['rule']}", "",
              f"**{'passed' if v['passed'] else 'not passed'}**: " + (
                  f"row {v['row']}: R@10 {v['recall@10']:.3f} (goal {v['min_recall_10']}), "
                  f"R@50 {v['recall@50']:.3f} (goal {v['min_recall_50']}); every row 0 "
                  f"outside the catalog and 0 violated constraints: {v['every_row_clean']}"
                  if "row" in v else v["why"]), ""]
    ex = summary.get("examples") or {}
    for kind, heading in (("right", f"Turns {judged} gets right (a new target in its top 10)"),
                        ("wrong", f"Turns {judged} gets wrong (no target in its top 50)")):
        lines += [f"## {heading}", ""]
        for case in ex.get(kind, []):
            lines.append(f"- {case['turn']}: seeker: \u201c{case['seeker']}\u201d \u2192 "
                         f"targets {case['targets']}; shown first {case['top5']}"
                         + (f" (hit at {case['hit_rank']})" if "hit_rank" in case else ""))
        lines.append("")
    return "\n".join(lines)
