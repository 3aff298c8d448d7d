"""The catalog and recommendation commands: ingest, recommend, chat."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from pydantic import ValidationError

from recagent.cli.options import EXIT_DEGRADED, EXIT_OK, problems, settings_from_args
from recagent.errors import ConfigError
from recagent.types import Interaction, Recommendation, Trace, UserHistory

NOTHING_LEFT = ("nothing left to recommend: the history already covers every catalog item "
                "the recommender could propose")


def one_line(text: str) -> str:
    """Control characters (newlines above all) shown escaped, so no catalog text can forge
    extra lines of the list."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def parse_history(spec: str) -> UserHistory:
    """'1,50,181' (liked, oldest first) or '1=5,50=2' (ratings on a 1-5 scale); for ids
    holding ',' or '=', a JSON list: '["a,b", {"item_id": "c=d", "rating": 4}]'."""
    if spec.lstrip().startswith("["):
        return _json_history(spec)
    interactions = []
    seen: set[str] = set()
    for n, token in enumerate(t.strip() for t in spec.split(",")):
        if not token:
            raise ConfigError(f"--history has an empty entry in {spec!r}")
        item_id, equals, rating = token.partition("=")
        if item_id in seen:
            raise ConfigError(f"--history names item {item_id} more than once")
        seen.add(item_id)
        if equals and not rating.strip():
            raise ConfigError(f"--history: the rating of item {item_id} is empty: write "
                              f"{item_id} for a like, or {item_id}=4 for a rating from 1 to 5")
        if not rating:
            interactions.append(Interaction(item_id=item_id, liked=True, ts=n))
            continue
        try:
            value = float(rating)
        except ValueError:
            value = math.nan
        if not 1 <= value <= 5:  # also refuses nan and inf
            raise ConfigError(f"--history: the rating of item {item_id} must be a number "
                              f"from 1 to 5, got {rating!r}")
        interactions.append(Interaction(item_id=item_id, rating=value, ts=n))
    return UserHistory(interactions=interactions)


def _json_history(spec: str) -> UserHistory:
    """--history as JSON: ids (liked) or {"item_id", "rating" | "liked"} objects."""
    try:
        entries = json.loads(spec)
    except ValueError as e:
        raise ConfigError(f"--history is not valid JSON: {e}") from None
    interactions = []
    for n, entry in enumerate(entries):
        if isinstance(entry, str | int) and not isinstance(entry, bool):
            entry = {"item_id": str(entry), "liked": True}
        if not isinstance(entry, dict) or not isinstance(entry.get("item_id"), str):
            raise ConfigError(f"--history[{n}] must be an item id or an object "
                              '{"item_id": "...", "rating": 1-5 | "liked": true|false}')
        rating = entry.get("rating")
        if rating is not None and not (isinstance(rating, int | float)
                                       and not isinstance(rating, bool) and 1 <= rating <= 5):
            raise ConfigError(f"--history[{n}]: the rating of item {entry['item_id']} must be "
                              f"a number from 1 to 5, got {rating!r}")
        try:
            interactions.append(Interaction(**entry, ts=n))
        except ValidationError as e:
            raise ConfigError(f"--history[{n}]: {problems(e)}") from None
    ids = [i.item_id for i in interactions]
    if twice := sorted({i for i in ids if ids.count(i) > 1}):
        raise ConfigError(f"--history names item {twice[0]} more than once")
    if not interactions:
        raise ConfigError("--history is an empty list")
    return UserHistory(interactions=interactions)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Items into Chroma, interactions into HOME/interactions.sqlite: both files are read
    and checked whole before anything is written. Interactions naming an item the catalog
    does not hold are refused (file, line and id): a wrong catalog is never half-used."""
    from recagent.wiring import open_interactions, open_store
    from retrieval.catalog_files import load_catalog, load_movielens
    from retrieval.errors import EmptyCatalogError
    from retrieval.interaction_files import ratings_file, read_interactions
    from retrieval.redial_files import (
        DIALOGUES_FILE,
        load_redial_catalog,
        load_redial_interactions,
    )

    source = args.movielens or args.file or args.redial
    if source is None and args.interactions is None:
        raise ConfigError("give a catalog (--movielens FOLDER, --redial FOLDER or --file FILE), "
                          "interactions "
                          "for the existing catalog (--interactions FILE), or both")
    for path in (source, args.interactions):
        if path is not None and not path.exists():
            raise ConfigError(f"{path} does not exist")
    items = None
    if args.redial is not None:
        items = load_redial_catalog(args.redial)
    elif source is not None:
        items = load_movielens(source) if args.movielens else load_catalog(source)
    # --interactions wins over the MovieLens folder's own ratings file (u.data, ratings.dat)
    log = args.interactions or (ratings_file(args.movielens) if args.movielens else None)
    settings = settings_from_args(args)
    store, name = open_store(settings), settings.collection
    rows = None
    if log is not None:
        if items is None:  # into the catalog as it is: it must be whole, and not empty
            store.check_complete()
            if store.count() == 0:
                raise EmptyCatalogError(
                    f"collection {name!r} is empty: ingest its catalog first "
                    "(--movielens FOLDER or --file FILE, with or without --interactions)")
        known = {i.id for i in items or []}
        for start in range(0, store.count(), 5000):
            known.update(store.collection.get(include=[], limit=5000, offset=start)["ids"])
        rows = read_interactions(log, known=known)
    elif args.redial is not None and items is not None:
        log = args.redial / DIALOGUES_FILE
        rows = load_redial_interactions(args.redial, known={i.id for i in items})
    out: dict[str, object] = {}
    if items is not None:
        report = store.ingest(items, progress=not args.json and sys.stderr.isatty())
        out.update(report.model_dump())
        if not args.json:
            print(f"{source}: {report.total} items — {report.added} added, {report.updated} "
                  f"updated, {report.unchanged} unchanged; collection now holds {store.count()}")
    if rows is not None:
        db = open_interactions(settings)
        done = db.ingest(name, rows)
        stored, users = db.count(name), len(db.users(name))
        out["interactions"] = {**done.model_dump(), "file": str(log), "stored": stored,
                               "users": users, "database": str(db.path)}
        if not args.json:
            print(f"{log}: {done.total} interactions — {done.added} added, {done.updated} "
                  f"updated, {done.unchanged} unchanged; collection {name!r} now holds "
                  f"{stored} interactions of {users} users")
    elif args.movielens and not args.json:
        print(f"{args.movielens} holds no ratings file (u.data or ratings.dat): catalog only; "
              "add its ratings with --interactions FILE")
    if args.json:
        print(json.dumps(out))
    return EXIT_OK


def print_recommendation(rec: Recommendation) -> None:
    width = max((len(one_line(i.title)) for i in rec.items), default=10)
    for n, item in enumerate(rec.items, 1):
        print(f"{n:>2}. {one_line(item.title):<{width}}  [{one_line(item.item_id)}]")
        print(f"    {one_line(item.explanation)}")
    t = rec.trace
    status = (f"DEGRADED ({', '.join(t.degraded_codes)}: {t.degraded_detail})" if t.degraded
              else "ok")
    print(f"\n{t.n_candidates} candidates · model {t.model or '-'} · "
          f"{t.usage.prompt_tokens}+{t.usage.completion_tokens} tokens · "
          f"{t.latency_s:.1f} s · {one_line(status)}" + (" · repaired" if t.repaired else ""))


def cmd_recommend(args: argparse.Namespace) -> int:
    from recagent.wiring import open_parts

    history = parse_history(args.history)
    settings = settings_from_args(args)
    if args.k > settings.n_candidates:
        raise ConfigError(f"--k {args.k} is more than the {settings.n_candidates} candidates "
                          "retrieved; raise --candidates (at most 100) or lower --k")
    began = time.perf_counter()
    with open_parts(settings, lists_only=True) as parts:
        started = time.perf_counter() - began
        for note in parts.notes:
            print(f"note: {note}", file=sys.stderr)
        rec = parts.recommender.recommend(history, k=args.k)
    status = "degraded" if rec.degraded else "ok" if rec.items else "nothing_left"
    if args.json:
        out = {
            "items": [i.model_dump(mode="json", include={"item_id", "title", "score",
                                                         "explanation", "source", "evidence"})
                      for i in rec.items],
            "status": status,
            "degraded": rec.degraded,
            "degraded_steps": rec.trace.degraded_codes,
            "trace": rec.trace.model_dump(mode="json"),
        }
        out["timing"] = timing(started, rec.trace)
        print(json.dumps(out, indent=2))
    elif status == "nothing_left":
        print(NOTHING_LEFT)
    else:
        print_recommendation(rec)
        print(timing_line(timing(started, rec.trace)), file=sys.stderr)
    if rec.degraded:
        for failed in rec.trace.degradations:
            print(f"warning: degraded answer: {failed.code}: {one_line(failed.detail)}",
                  file=sys.stderr)
        if args.strict:
            return EXIT_DEGRADED
    return EXIT_OK


def timing(started_s: float, trace: Trace) -> dict[str, float | None]:
    """Where a recommendation's time went: start (the model, the catalog, the sources),
    the ranking call, the explanation call (prompt and generation where the server says)
    and the rest (retrieval, gate, templates)."""
    call = trace.explain_call
    explain_s = call.latency_s if call else 0.0
    return {"start_s": round(started_s, 3), "ranking_s": round(trace.llm_latency_s, 3),
            "explanation_s": round(explain_s, 3),
            "explanation_prompt_s": call.usage.prompt_s if call else None,
            "explanation_generation_s": call.usage.generation_s if call else None,
            "prompt_tokens": call.usage.prompt_tokens if call else 0,
            "generated_tokens": call.usage.completion_tokens if call else 0,
            "retrieval_and_rest_s": round(max(0.0, trace.latency_s - trace.llm_latency_s
                                              - explain_s), 3)}


def timing_line(t: dict[str, float | None]) -> str:
    split = ""
    if t["explanation_prompt_s"] is not None and t["explanation_generation_s"] is not None:
        split = (f": prompt {t['explanation_prompt_s']:.2f} s for {t['prompt_tokens']:.0f} "
                 f"tokens, generation {t['explanation_generation_s']:.2f} s for "
                 f"{t['generated_tokens']:.0f}")
    return (f"time: start {t['start_s']:.1f} s (model, catalog, sources) · retrieval and the "
            f"rest {t['retrieval_and_rest_s']:.3f} s · ranking call {t['ranking_s']:.1f} s · "
            f"explanation call {t['explanation_s']:.1f} s{split}")


def cmd_chat(args: argparse.Namespace) -> int:
    """A conversation: interactive, or one message per line of --script."""
    from recagent.chat.console import print_turn, script_messages, typed_messages
    from recagent.chat.session import ChatSession
    from recagent.wiring import build_agent, open_parts

    settings = settings_from_args(args)
    script = script_messages(args.script) if args.script else None
    with open_parts(settings) as parts:
        for note in parts.notes:
            print(f"note: {note}", file=sys.stderr)
        recommender, client, prompts = parts.recommender, parts.client, parts.prompts
        agent = build_agent(parts) if args.agent else None
        if args.session and args.session.exists():
            session = ChatSession.from_json(args.session.read_text(encoding="utf-8"),
                                            recommender, client, prompts, k=args.k,
                                            agent=agent)
        else:
            session = ChatSession(recommender, client, prompts, k=args.k, agent=agent)
        for message in script if script is not None else typed_messages():
            try:
                turn = session.send(message)
            except ConfigError as e:
                if script is not None:
                    raise
                print(f"error: {e}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps(turn.model_dump(mode="json", exclude={"trace"})), flush=True)
            else:
                print_turn(turn)
            if args.session:
                args.session.write_text(session.to_json(), encoding="utf-8")
    return EXIT_OK


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit the fusion weights on validation users of the ingested interactions; save them
    beside the catalog, where recommend, chat and the Python API pick them up."""
    from recagent.wiring import fit_and_save

    settings = settings_from_args(args)
    if not args.score_llm or args.no_llm:
        settings = settings.model_copy(update={"ranker": None})
    fitted, path = fit_and_save(settings, n_users=args.users,
                                progress=None if args.json else print)
    if args.json:
        print(fitted.model_dump_json(indent=2))
        return EXIT_OK
    print(f"retrieval weights: {_weights(fitted.retrieval_weights)}")
    print(f"rerank weights:    {_weights(fitted.rerank_weights)}")
    llm = (f"{fitted.llm_share:.0%} of the rerank weight (model {fitted.llm_model})"
           if fitted.llm_model else "not scored: the product ranks without it "
                                    "(`recagent fit --score-llm` measures whether it helps)")
    print(f"the LLM's share:   {llm}")
    print("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in fitted.validation.items()))
    print(f"saved to {path}")
    return EXIT_OK


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{name} {w:.2f}" for name, w in weights.items())
