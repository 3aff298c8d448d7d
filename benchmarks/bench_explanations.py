"""Whether the LLM's explanation sentences earn their place, per model preset.

The product's `recommend` (a 10-item list; the LLM words the top `--worded` items, 1 as
the product does) for the same new users with 1-5 liked movies (the histories of
benchmarks/bench_recommend.py, seed 11). Per preset it prints, as JSON: sentences asked,
passed (shipped as the LLM's), the pass rate, what was refused by kind, truncations caught
(cut_off: the server's length stop or a sentence that does not end), copies caught
(copies_evidence), the mean length in words and the mean share of word 3-grams taken from
the evidence lines of passing sentences, the same two for the template sentences of the
same items, and how many returned explanations fail a re-check (the product ships none).
Each user's outcome is appended to `--out` (JSON lines) as it finishes: a run stopped
half way goes on where it stopped, and `--report` prints the summary of what finished.
Needs a HOME with the catalog ingested and fitted without an LLM:
    .venv/bin/recagent ingest --movielens ../shared/data/ml-100k --home HOME
    .venv/bin/recagent fit --no-llm --home HOME
    nice .venv/bin/python benchmarks/bench_explanations.py --home HOME --model smollm2-135m \
        -n 200 --out runs/explain-smollm2.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from bench_recommend import sparse_histories
from tqdm import tqdm

from recagent.explain import templates
from recagent.explain.checker import Checker
from recagent.explain.form import copied_share, words
from recagent.explain.wording import evidence_lines
from recagent.types import Item, Recommendation
from recagent.wiring import LLMSpec, Settings, open_parts

K = 10


def recheck(checker: Checker, rec: Recommendation, history: list[Item]) -> int:
    """Returned explanations the checker refuses when asked again (0 is the promise)."""
    titles = [i.title for i in rec.items]
    genres = {g for i in rec.items if i.evidence for g in i.evidence.genres}
    failing, shipped = 0, []
    for item in rec.items:
        if item.evidence is None or checker.check(item.explanation, item.evidence, history,
                                                  earlier=shipped, titles=titles, genres=genres):
            failing += 1
        shipped.append(item.explanation)
    return failing


def user_record(rec: Recommendation, lines: list[tuple[str, ...]], refused: int,
                user: str) -> dict[str, Any]:
    """One user's outcome: per worded item, whether the LLM's sentence shipped, why not,
    and the length and copied share of what was shipped beside its template."""
    rows = []
    for n, record in enumerate(rec.trace.explanations):
        if record.kind == "template":
            continue
        item = rec.items[n]
        evidence = item.evidence
        template = templates.sentences(evidence, n)[0] if evidence is not None else ""
        given = lines[n] if n < len(lines) else ()
        shipped = item.explanation if record.kind == "llm" else None
        rows.append({
            "item": item.item_id, "kind": record.kind,
            "failures": sorted({f.kind for f in record.failures}),
            "words": len(words(shipped)) if shipped else None,
            "copied": round(copied_share(shipped, given), 3) if shipped else None,
            "template_words": len(words(template)),
            "template_copied": round(copied_share(template, given), 3),
            "sentence": shipped or record.rejected,
        })
    return {"user": user, "rows": rows, "refused_on_recheck": refused,
            "degraded": rec.trace.degraded_codes}


def summary(model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for u in records for r in u["rows"]]
    passed = [r for r in rows if r["kind"] == "llm"]
    failures: Counter[str] = Counter(f for r in rows for f in r["failures"])

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 3) if values else None

    return {
        "model": model, "users": len(records), "llm_asked": len(rows),
        "llm_passed": len(passed),
        "llm_pass_rate": round(len(passed) / len(rows), 3) if rows else None,
        "truncations_caught": failures["cut_off"],
        "copies_caught": failures["copies_evidence"],
        "refused_by_kind": dict(failures.most_common()),
        "passing_words_mean": mean([r["words"] for r in passed]),
        "passing_copied_mean": mean([r["copied"] for r in passed]),
        "template_words_mean": mean([r["template_words"] for r in rows]),
        "template_copied_mean": mean([r["template_copied"] for r in rows]),
        "returned_failing_recheck": sum(u["refused_on_recheck"] for u in records),
        "degraded": sum(bool(u["degraded"]) for u in records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-100k/u.data"))
    parser.add_argument("-n", type=int, default=200, help="users (one request each)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--worded", type=int, default=1,
                        help="items the LLM words per list (the product: 1)")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per user")
    parser.add_argument("--report", action="store_true", help="summarise --out, run nothing")
    args = parser.parse_args()

    done = [json.loads(line) for line in args.out.read_text().splitlines()
            if line.strip()] if args.out.exists() else []
    if not args.report:
        histories = sparse_histories(args.data, args.n, args.seed)
        finished = {d["user"] for d in done}
        todo = [h for h in histories if h.user_id not in finished]
        settings = Settings(home=args.home, llm=LLMSpec(preset=args.model),
                            explain_with_llm=True, llm_explained=args.worded)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open_parts(settings) as parts, args.out.open("a") as out:
            recommender = parts.recommender
            for history in tqdm(todo, desc=args.model, unit="user"):
                rec = recommender.recommend(history, k=K)
                items = parts.store.get([i.item_id for i in history.interactions])
                refused = recheck(recommender.explainer.checker, rec, list(items.values()))
                lines = evidence_lines(parts.prompts, [i.evidence for i in rec.items
                                                       if i.evidence is not None][:args.worded])
                record = user_record(rec, lines, refused, history.user_id or "")
                out.write(json.dumps(record) + "\n")
                out.flush()
                done.append(record)
    print(json.dumps(summary(args.model, done)))


if __name__ == "__main__":
    main()
