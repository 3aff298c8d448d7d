"""`recagent eval` for the `conversation` protocol: recorded dialogues, iEvaLM's counting.

For every test turn each row reads the context and returns `k` (50) items; every list
passes one gate here (items outside the catalog and repeats are dropped and counted) and
is scored per turn-item pair (eval.conversation_metrics), on all pairs and on the pairs
whose target the context did not mention. Rows run one after another; each dialogue's
lists are appended to `state/<row>.jsonl` as they come, so a stopped run resumes where
it stopped (delete the report folder to start over).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.agent_stats import AGENT_ROWS, RULES_ROW, conversation_paired, summarise_messages
from eval.conversation_config import ConversationConfig, ConversationProtocol, DialoguesDataset
from eval.conversation_metrics import VIEWS, pairs_of, scores
from eval.conversation_report import STATE_SUFFIX, state_records, write_conversation_report
from eval.conversation_rows import FACTORIES, LLM_ROWS, ChatAnswer, RowParts, popularity
from eval.dialogues import DialogueTurn, TitleIndex, dialogues, load_turns
from eval.results import append_line
from recagent.explain.explainer import Explained, Explainer
from recagent.fit import FittedConfig, Row, row_rating
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.recommender import Recommender
from recagent.types import Candidate, Degradation, Evidence, Interaction, Item
from recagent.wiring import (
    Settings,
    build_retriever,
    fit_product,
    fitted_fusion,
    fitted_retriever_spec,
    open_store,
    without_llm,
)
from retrieval.catalog_files import load_catalog
from retrieval.redial_files import CATALOG_FILE, load_redial_catalog, load_redial_interactions
from retrieval.store import CatalogStore


def load_items(catalog: Path) -> list[Item]:
    """A ReDial folder (id2info.json) or any catalog file recagent ingests."""
    if catalog.is_dir() and (catalog / CATALOG_FILE).is_file():
        return load_redial_catalog(catalog)
    return load_catalog(catalog)


def train_rows(data: DialoguesDataset, train: Sequence[DialogueTurn], index: TitleIndex,
               known: set[str]) -> list[Row]:
    """Interactions for the product's collaborative sources: the seekers' likes of a ReDial
    folder (`likes`), else each train dialogue's mentioned items as one user's history."""
    if data.likes is not None:
        return [(r.user, r.item, row_rating(r.rating, r.liked), r.ts)
                for r in load_redial_interactions(data.likes, known=known)]
    rows: list[Row] = []
    for dialog, turns in dialogues(train).items():
        seen: list[str] = []
        for t in turns:
            seen += [i for i in [*index.mentions(t), *t.targets] if i not in seen]
        rows += [(f"dialogue-{dialog}", item, None, n) for n, item in enumerate(seen)]
    return rows


@dataclass
class Loaded:
    items: dict[str, Item]
    store: CatalogStore
    index: TitleIndex
    train: list[DialogueTurn]
    test: list[DialogueTurn]
    rows: list[Row]


def load(config: ConversationConfig, settings: Settings, *, progress: bool) -> Loaded:
    data = config.dataset
    assert isinstance(data, DialoguesDataset)
    items = load_items(data.catalog)
    store = open_store(settings, collection=f"eval-dialogues-{data.catalog.stem}")
    store.ingest(items, progress=progress)
    first = TitleIndex(items)
    train = load_turns(data.train, first)
    # namesakes resolve to the one the train recommenders named most
    counts = {i: n for n, i in enumerate(reversed(popularity(train)), 1)}
    index = TitleIndex(items, counts)
    test = load_turns(data.test, index)
    by_id = {i.id: i for i in items}
    return Loaded(by_id, store, index, train, test, train_rows(data, train, index, set(by_id)))


def sample(turns: Sequence[DialogueTurn], n: int | None, seed: int) -> list[DialogueTurn]:
    """Whole dialogues, seeded, until at least `n` turns (None: every turn)."""
    if n is None or n >= len(turns):
        return list(turns)
    groups = list(dialogues(turns).values())
    random.Random(seed).shuffle(groups)
    out: list[DialogueTurn] = []
    for g in groups:
        if len(out) >= n:
            break
        out += g
    return out


class ProductParts:
    """The product fitted once on the train interactions (saved in the report folder)."""

    def __init__(self, config: ConversationConfig, loaded: Loaded, out: Path, progress: bool
                 ) -> None:
        self.config, self.loaded, self.out, self.progress = config, loaded, out, progress

    @cache  # noqa: B019 - one instance per run
    def fitted(self) -> FittedConfig:
        path = self.out / "product_fit.json"
        if path.is_file():
            return FittedConfig.model_validate_json(path.read_text(encoding="utf-8"))
        store = self.loaded.store
        fitted = fit_product(
            store, self.loaded.rows, collection=store.collection.name, ranker=None,
            llm_model=None, n=self.config.protocol.k if isinstance(
                self.config.protocol, ConversationProtocol) else 50,
            n_users=self.config.fit_users, seed=self.config.seed,
            progress=(lambda line: tqdm.write(f"product fit: {line}")) if self.progress
            else (lambda _: None),
            min_users=1)  # an eval fits whatever its split holds; the report gives the count
        self.out.mkdir(parents=True, exist_ok=True)
        path.write_text(fitted.model_dump_json(indent=1), encoding="utf-8")
        return fitted

    @cache  # noqa: B019
    def recommender(self, k: int) -> Recommender:
        fitted = self.fitted()
        retriever = build_retriever(fitted_retriever_spec(fitted), self.loaded.store,
                                    self.loaded.rows)
        return Recommender(self.loaded.store, retriever, without_llm(fitted_fusion(fitted)),
                           n_candidates=k, explainer=ListsOnly())


UNWRITTEN = "(not written: the evaluation scores lists only)"


class ListsOnly(Explainer):
    """Writes no explanations. The Recommender explains a list after its gate chose it, so
    explanations never change a list; these protocols score lists only, and writing and
    checking 50 explanations per answer was 50-70% of a product or chat turn's time
    (profiled on ReDial)."""

    def explain(self, chosen: Sequence[Candidate], history: Sequence[tuple[Interaction, Item]],
                *, user_id: str | None = None, others: Sequence[Candidate] = (),
                use_llm: bool = True, skipped: Degradation | None = None) -> Explained:
        return Explained(sentences=[UNWRITTEN] * len(chosen),
                         evidence=[Evidence(item_id=c.item.id, title=c.item.title)
                                   for c in chosen],
                         records=[])


def gate(answer: ChatAnswer, known: dict[str, Item], k: int) -> tuple[list[str], int, int]:
    """The list cut to k, without items outside the catalog and repeats; and how many of
    each were dropped."""
    inside = [i for i in answer.items if i in known]
    unique = list(dict.fromkeys(inside))
    return unique[:k], len(answer.items) - len(inside), len(inside) - len(unique)


def run_row(name: str, parts: RowParts, turns: Sequence[DialogueTurn], k: int, out: Path,
            *, progress: bool) -> list[dict[str, Any]]:
    """Every dialogue through the row, resuming from (and appending to) its state file."""
    done = {r["dialog"]: r for r in state_records(out, name)}
    state = out / "state" / f"{name}{STATE_SUFFIX}"
    groups = dialogues(turns)
    todo = [d for d in groups if d not in done]
    if todo:
        row = FACTORIES[name](parts)
        for dialog in tqdm(todo, desc=name, unit="dialogue", disable=not progress):
            start = time.perf_counter()
            answers = row.dialogue(groups[dialog], k)
            seconds = time.perf_counter() - start
            record: dict[str, Any] = {"dialog": dialog, "seconds": seconds, "turns": []}
            for turn, answer in zip(groups[dialog], answers, strict=True):
                items, outside, repeats = gate(answer, parts.items, k)
                record["turns"].append({"turn": turn.key, "items": items,
                                        "outside": outside, "repeats": repeats,
                                        "violations": answer.violations,
                                        **({"extra": answer.extra} if answer.extra
                                           else {})})
            append_line(state, json.dumps(record))
            done[dialog] = record
    return [done[d] for d in groups]


def evaluate_conversation(
    config: ConversationConfig, settings: Settings, out: Path, config_text: str, *,
    open_client: Callable[[], AbstractContextManager[LLMClient]], progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    protocol = config.protocol
    assert isinstance(protocol, ConversationProtocol)
    loaded = load(config, settings, progress=progress)
    turns = sample(loaded.test, protocol.turns, config.seed)
    llm_turns = list(turns)
    if protocol.llm_dialogues is not None:
        groups = list(dialogues(turns).values())
        random.Random(config.seed + 1).shuffle(groups)
        llm_turns = [t for g in groups[: protocol.llm_dialogues] for t in g]
    product = ProductParts(config, loaded, out, progress)
    mentioned = {t.key: loaded.index.mentions(t) for t in turns}
    pairs = pairs_of({t.key: t.targets for t in turns}, mentioned)
    results: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack:
        client = None
        if LLM_ROWS & set(protocol.rows):
            client = stack.enter_context(open_client())
        parts = RowParts(loaded.items, loaded.store, loaded.index, loaded.train,
                         product.recommender, PromptLibrary(), client)
        for name in protocol.rows:
            on = llm_turns if name in LLM_ROWS else turns
            records = run_row(name, parts, on, protocol.k, out, progress=progress)
            results[name] = summarise_row(records, pairs, protocol.k)
    add_paired(results, {name: row_lists(out, name) for name in results}, pairs)
    summary = {
        "protocol": "conversation", "k": protocol.k,
        "data": {"test_turns": len(loaded.test), "turns": len(turns), "pairs": len(pairs),
                 "mentioned_pairs": sum(m for _, _, m in pairs.values()),
                 "dialogues": len(dialogues(turns)), "train_turns": len(loaded.train),
                 "train_interactions": len(loaded.rows), "catalog": len(loaded.items)},
        "rows": results,
        "published": [p.model_dump() for p in config.published],
    }
    summary["verdict"] = verdict(protocol, results)
    write_conversation_report(summary, out, config_text, turns, pairs, loaded.items,
                              mentioned, protocol.judged_row)
    return summary, out


def summarise_row(records: Sequence[dict[str, Any]], pairs: dict[str, tuple[str, str, bool]],
                  k: int) -> dict[str, Any]:
    """A row's metrics (both views) and its gate counts, from its state records."""
    lists = {t["turn"]: t["items"] for r in records for t in r["turns"]}
    scope = {p: v for p, v in pairs.items() if v[0] in lists}
    n_turns = len(lists)
    seconds = sum(r["seconds"] for r in records)
    messages = [m for r in records for t in r["turns"]
                for m in t.get("extra", {}).get("messages", [])]
    agent = {"agent": summarise_messages(messages)} if messages else {}
    return {
        **{view: scores(scope, lists, view) for view in VIEWS},
        "turns": n_turns,
        "dialogues": len(records),
        "out_of_catalog": sum(t["outside"] for r in records for t in r["turns"]),
        "repeats": sum(t["repeats"] for r in records for t in r["turns"]),
        "violations": sum(t["violations"] for r in records for t in r["turns"]),
        "short_lists": sum(len(t["items"]) < k for r in records for t in r["turns"]),
        "seconds_per_turn": seconds / n_turns if n_turns else 0.0,
        **agent,
    }


def row_lists(out: Path, row: str) -> dict[str, list[str]]:
    return {t["turn"]: t["items"] for r in state_records(out, row) for t in r["turns"]}


def add_paired(results: dict[str, dict[str, Any]], lists: dict[str, dict[str, list[str]]],
               pairs: dict[str, tuple[str, str, bool]]) -> None:
    """Each agent row's paired comparison with the rules chat row, when both ran."""
    for name in results:
        if name in AGENT_ROWS and RULES_ROW in lists:
            results[name]["vs_chat"] = conversation_paired(lists[name], lists[RULES_ROW],
                                                           pairs)


def verdict(protocol: ConversationProtocol, results: dict[str, dict[str, Any]]
            ) -> dict[str, Any]:
    """The rule as the config states it, checked on the judged row and every row's gate."""
    judged = results.get(protocol.judged_row)
    clean = all(r["out_of_catalog"] == 0 and r["violations"] == 0 for r in results.values())
    agent = next((results[name] for name in AGENT_ROWS if name in results), None)
    if agent is not None and "vs_chat" in agent:  # the agent configs' rule: beat the rules
        vs = agent["vs_chat"]["all_recall@10"]
        return {"rule": protocol.judgement, "passed": vs["better"] and clean,
                "why": f"agent - chat Recall@10 {vs['diff']:+.3f} (95% CI {vs['ci95'][0]:+.3f}"
                       f" to {vs['ci95'][1]:+.3f}), paired t-test p = {vs['p']:.3f} on "
                       f"{vs['n']} turn-item pairs; every row 0 outside the catalog and 0 "
                       f"violated constraints: {clean}"}
    if judged is None:
        return {"rule": protocol.judgement, "passed": False,
                "why": f"row {protocol.judged_row!r} was not run"}
    r10, r50 = judged["all"]["recall@10"], judged["all"]["recall@50"]
    passed = r10 >= protocol.min_recall_10 and r50 >= protocol.min_recall_50 and clean
    return {"rule": protocol.judgement, "row": protocol.judged_row, "recall@10": r10,
            "recall@50": r50, "min_recall_10": protocol.min_recall_10,
            "min_recall_50": protocol.min_recall_50, "every_row_clean": clean,
            "passed": passed}
