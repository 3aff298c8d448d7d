"""`recagent eval` for the `simulation` protocol: a simulated user with a hidden target.

Episodes (seeded): MovieLens 100K — a user with at least 5 liked items (rating >= the
threshold), one of them held out as the target (its rating is left out of every model's
training data), 0-3 of the others named in the first message; ReDial — a test turn's
target not mentioned in its context, 0-3 of the context's mentioned movies named first.
The rules user (eval.simulated_user) talks to each row for up to `max_turns` turns;
success = the target among the `k` (10) items shown. Each shown list also counts items
outside the catalog, items breaking the system's own profile (`violations`) and items
off the genre/decade the user stated (`off_request`, informative: a row that reads no
text ignores them by design). The rows' session is fresh per episode.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm

from eval.agent_stats import AGENT_ROWS, RULES_ROW, simulation_paired
from eval.conversation import Loaded, ProductParts, load
from eval.conversation_config import ConversationConfig, MovieLensDataset, SimulationProtocol
from eval.conversation_report import STATE_SUFFIX, state_records
from eval.conversation_rows import (
    ChatAnswer,
    ChatLike,
    ChatSessionAdapter,
    agent_session,
    popularity,
)
from eval.dialogues import TitleIndex
from eval.report import write_gzip
from eval.results import append_line
from eval.simulated_user import (
    GuardResult,
    LeakGuard,
    RulesUser,
    decade,
    pick_opening,
    states_title,
)
from eval.simulation_metrics import summarise_episodes
from recagent.agent.catalog import CatalogIndex
from recagent.chat.session import ChatSession
from recagent.errors import ConfigError, LLMError
from recagent.llm.client import LLMClient
from recagent.llm.prompts import PromptLibrary
from recagent.types import Item
from recagent.wiring import Settings, open_store
from retrieval.attributes import AttributeFilter, values, violations
from retrieval.catalog_files import load_movielens
from retrieval.interaction_files import ratings_file, read_interactions

SIM_LLM_ROWS = frozenset({"chat_llm", "chat_llm_user"})
"""Rows that need the [llm] model: they run on `llm_episodes` episodes. chat_llm_user is
the rules chat talking with the LLM-worded user (through the leakage guard)."""
Episode = tuple[Item, list[Item]]
"""(hidden target, the items the user opens with)."""


WORDING_TEMPLATE = "sim_user"
WORDING_MAX_TOKENS = 80


def llm_wording(client: LLMClient, prompts: PromptLibrary) -> Callable[[str], str]:
    """The rules message reworded by the LLM (prompts/sim_user.j2); on any LLM failure the
    rules message itself (the episode goes on; the guard still sees what is offered)."""
    def word(message: str) -> str:
        prompt = prompts.render(WORDING_TEMPLATE, message=message)
        try:
            reply = client.complete(prompt.messages, max_tokens=WORDING_MAX_TOKENS,
                                    temperature=0.0)
        except LLMError:
            return message
        text = " ".join(reply.text.split())
        return text or message
    return word


class PopularityChat:
    """Reads nothing: the most popular items not shown before, k at a time."""

    def __init__(self, top: Sequence[str], k: int) -> None:
        self.top, self.k, self.shown = list(top), k, set[str]()

    def send(self, message: str) -> ChatAnswer:
        items = [i for i in self.top if i not in self.shown][: self.k]
        self.shown.update(items)
        return ChatAnswer(items)


def movielens_episodes(data: MovieLensDataset, protocol: SimulationProtocol, seed: int,
                       settings: Settings, *, progress: bool) -> tuple[Loaded, list[Episode],
                                                                          list[str]]:
    items = {i.id: i for i in load_movielens(data.path)}
    path = ratings_file(data.path)
    assert path is not None
    ratings = read_interactions(path, known=set(items))
    liked: dict[str, list[str]] = {}
    for r in ratings:
        if r.rating is not None and r.rating >= data.positive_threshold:
            liked.setdefault(r.user, []).append(r.item)
    users = sorted((u for u, ids in liked.items() if len(ids) >= 5), key=lambda u: int(u))
    rng = random.Random(seed)
    episodes: list[Episode] = []
    held: set[tuple[str, str]] = set()
    for user in rng.sample(users, min(protocol.episodes, len(users))):
        target = items[rng.choice(sorted(liked[user]))]
        own = [items[i] for i in sorted(liked[user])]
        episodes.append((target, pick_opening(own, target, rng, *protocol.opening_items)))
        held.add((user, target.id))
    rows = [(r.user, r.item, r.rating, r.ts) for r in ratings if (r.user, r.item) not in held]
    store = open_store(settings, collection="eval-simulation-ml-100k")
    store.ingest(list(items.values()), progress=progress)
    top = Counter(i for u, i, rating, _ in rows if rating is not None
                  and rating >= data.positive_threshold)
    ranked = [i for i, _ in sorted(top.items(), key=lambda kv: (-kv[1], int(kv[0])))]
    return Loaded(items, store, TitleIndex(items.values()), [], [], rows), episodes, ranked


def redial_episodes(config: ConversationConfig, settings: Settings, *, progress: bool
                    ) -> tuple[Loaded, list[Episode], list[str]]:
    protocol = config.protocol
    assert isinstance(protocol, SimulationProtocol)
    loaded = load(config, settings, progress=progress)
    rng = random.Random(config.seed)
    turns = list(loaded.test)
    rng.shuffle(turns)
    episodes: list[Episode] = []
    used: set[str] = set()
    for turn in turns:
        said = loaded.index.mentions(turn)
        new = [i for i in turn.targets if i not in said and i not in used]
        if not new:
            continue
        target = loaded.items[rng.choice(new)]
        used.add(target.id)
        own = [loaded.items[i] for i in said]
        episodes.append((target, pick_opening(own, target, rng, *protocol.opening_items)))
        if len(episodes) == protocol.episodes:
            break
    return loaded, episodes, popularity(loaded.train)


def stated_filter(user: RulesUser, turn: int) -> AttributeFilter:
    """The genre and decade the user has stated by `turn` (0-based), as a filter."""
    said = user.attributes[: turn + 1]
    any_of: dict[str, list[str]] = {}
    year_min = year_max = None
    genres = [g for g in values(user.target, "genres") if any(
        f"mood for {g.lower()}." in s for s in said)]
    if genres:
        any_of["genres"] = genres
    if (d := decade(user.target)) is not None and any(f"the {d}s" in s for s in said):
        year_min, year_max = d, d + 9
    return AttributeFilter(any_of=any_of, year_min=year_min, year_max=year_max)


def run_episode(session: ChatLike, user: RulesUser, items: dict[str, Item],
                protocol: SimulationProtocol, word: Callable[[str], str] | None = None
                ) -> dict[str, Any]:
    """One episode. `word` rewords each rules message (an LLM): what it offers passes the
    leakage guard, which sends the rules message instead when it reaches the threshold."""
    guard = LeakGuard()
    record: dict[str, Any] = {"target": user.target.id, "opening": [i.id for i in user.opening],
                              "turns": []}
    start = time.perf_counter()
    for turn in range(protocol.max_turns):
        rules = user.message(turn)
        offered = word(rules) if word is not None else rules
        sent = guard.check(offered, user.target.title, rules) if word is not None \
            else GuardResult(rules, False, guard.score(rules, user.target.title))
        answer = session.send(sent.message)
        shown = [i for i in dict.fromkeys(answer.items) if i in items][: protocol.k]
        asked = stated_filter(user, turn)
        hit = user.target.id in shown
        record["turns"].append({
            "message": sent.message, "shown": shown, "hit": hit,
            "violations": answer.violations,
            "off_request": sum(bool(violations(items[i], asked)) for i in shown),
            "outside": len([i for i in answer.items if i not in items]),
            "leaked": sent.leaked, "stated": states_title(sent.message, user.target.title),
            **({"extra": answer.extra} if answer.extra else {})})
        if hit:
            break
    record["seconds"] = time.perf_counter() - start
    return record


def evaluate_simulation(
    config: ConversationConfig, settings: Settings, out: Path, config_text: str, *,
    open_client: Callable[[], AbstractContextManager[LLMClient]], progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    protocol = config.protocol
    assert isinstance(protocol, SimulationProtocol)
    if isinstance(config.dataset, MovieLensDataset):
        loaded, episodes, top = movielens_episodes(config.dataset, protocol, config.seed,
                                                   settings, progress=progress)
    else:
        loaded, episodes, top = redial_episodes(config, settings, progress=progress)
    product = ProductParts(config, loaded, out, progress)
    prompts = PromptLibrary()
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        llm_rows = SIM_LLM_ROWS | AGENT_ROWS
        client = stack.enter_context(open_client()) if llm_rows & set(protocol.rows) else None
        index = CatalogIndex(list(loaded.items.values()))
        sessions: dict[str, Callable[[], ChatLike]] = {
            "popularity": lambda: PopularityChat(top, protocol.k),
            "chat": lambda: ChatSessionAdapter(ChatSession(
                product.recommender(50), None, prompts, k=protocol.k)),
            "chat_llm": lambda: ChatSessionAdapter(ChatSession(
                product.recommender(50), client, prompts, k=protocol.k)),
            "agent": lambda: agent_session(product.recommender(50), _needs(client), prompts,
                                           index, protocol.k),
        }
        word = llm_wording(client, prompts) if client is not None else None
        ran: dict[str, list[dict[str, Any]]] = {}
        for name in protocol.rows:
            worded = name == "chat_llm_user"
            n = protocol.llm_episodes if name in llm_rows else len(episodes)
            records = run_episodes(name, sessions["chat" if worded else name], episodes[:n],
                                   loaded.items, protocol, out, config.seed,
                                   word=word if worded else None, progress=progress)
            ran[name] = records
            results[name] = summarise_episodes(records, protocol.max_turns)
        for row in ran:
            if row in AGENT_ROWS and RULES_ROW in ran:
                results[row]["vs_chat"] = simulation_paired(ran[row], ran[RULES_ROW],
                                                            protocol.max_turns)
    summary = {"protocol": "simulation", "episodes": len(episodes), "k": protocol.k,
               "max_turns": protocol.max_turns, "rows": results,
               "judgement": protocol.judgement,
               "verdict": simulation_verdict(results, protocol.max_turns)}
    write_simulation_report(summary, out, config_text)
    return summary, out


def _needs(client: LLMClient | None) -> LLMClient:
    if client is None:
        raise ConfigError("the agent row needs an [llm] table")
    return client


def simulation_verdict(results: dict[str, Any], max_turns: int) -> dict[str, Any]:
    """The committed rules: every row clean (nothing outside the catalog, no broken limit,
    the title never stated to the system); with both rows, chat beats popularity on
    success@max_turns."""
    key = f"success@{max_turns}"
    clean = all(r["out_of_catalog"] == 0 and r["violations"] == 0
                and r["title_stated_to_system"] == 0 for r in results.values())
    chat, pop = results.get("chat"), results.get("popularity")
    agent = results.get("agent")
    if agent is not None and chat is not None and "vs_chat" in agent:
        vs = agent["vs_chat"][key]  # the agent configs' rule: agent beats the rules chat
        return {"passed": vs["better"] and clean, "agent": vs["agent"], "chat": vs["rules"],
                "diff": vs["diff"], "p": vs["p"], "clean": clean}
    if chat is None or pop is None:
        return {"passed": clean, "clean": clean}
    return {"passed": chat[key] > pop[key] and clean, "chat": chat[key],
            "popularity": pop[key], "clean": clean}


def run_episodes(name: str, new_session: Callable[[], ChatLike], episodes: Sequence[Episode],
                 items: dict[str, Item], protocol: SimulationProtocol, out: Path, seed: int,
                 *, word: Callable[[str], str] | None = None, progress: bool
                 ) -> list[dict[str, Any]]:
    """Every episode through a fresh session, resuming from the row's state file."""
    import json

    done = {r["episode"]: r for r in state_records(out, name)}
    state = out / "state" / f"{name}{STATE_SUFFIX}"
    for n, (target, opening) in enumerate(tqdm(episodes, desc=name, unit="episode",
                                               disable=not progress)):
        if n in done:
            continue
        user = RulesUser(target, opening, random.Random(seed * 1000 + n))
        record = {"episode": n, **run_episode(new_session(), user, items, protocol, word)}
        append_line(state, json.dumps(record))
        done[n] = record
    return [done[n] for n in range(len(episodes))]


def write_simulation_report(summary: dict[str, Any], out: Path, config_text: str) -> None:
    import json

    (out / "config.toml").write_text(config_text, encoding="utf-8")
    for row in summary["rows"]:
        records = list(state_records(out, row))
        write_gzip(out / "state" / f"{row}{STATE_SUFFIX}.gz",
                   "".join(json.dumps(r) + "\n" for r in records))
        (out / "state" / f"{row}{STATE_SUFFIX}").unlink(missing_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Simulated user ({summary['episodes']} episodes, up to {summary['max_turns']} "
             f"turns, success = target in the {summary['k']} shown)", "",
             f"Rule (written before the run): {summary['judgement']}", "",
             f"Verdict: {json.dumps(summary['verdict'])}", "",
             "| row | episodes | " + " | ".join(f"success@{t}" for t in range(
                 1, summary["max_turns"] + 1)) + " | mean turns to success | violations "
             "(own profile) | off request (stated genre/decade) | outside catalog | leaks "
             "caught | title stated to system | s/turn |",
             "| --- " * (summary["max_turns"] + 10) + "|"]
    for name, r in summary["rows"].items():
        mean = r["mean_turns_to_success"]
        lines.append(f"| {name} | {r['episodes']} | " + " | ".join(
            f"{r[f'success@{t}']:.3f}" for t in range(1, summary["max_turns"] + 1))
            + f" | {'-' if mean is None else f'{mean:.2f}'} | {r['violations']} | "
            f"{r['off_request']} | {r['out_of_catalog']} | {r['leaks_caught']} | "
            f"{r['title_stated_to_system']} | {r['seconds_per_turn']:.3f} |")
    (out / "metrics.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
