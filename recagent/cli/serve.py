"""`recagent serve`: the HTTP service and its chat page (recagent/serve), with the same
catalog, model and pipeline flags as `recommend`."""

from __future__ import annotations

import argparse
import os
import sys

from recagent.cli.options import EXIT_OK, bounded, settings_from_args

ENV_HELP = """environment (flags win):
  RECAGENT_API_KEY       the API key clients must send (required to bind beyond loopback)
  RECAGENT_DATABASE_URL  the sessions database (SQLAlchemy URL; default SQLite in HOME)
"""


def add_command(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", parents=parents, help="serve recommendations and the chat over HTTP",
        description="Serve the recommendation API, chat sessions and the chat page over "
                    "HTTP (OpenAPI at /docs). Each request has a deadline (--deadline, or "
                    "its own deadline_s); past it the answer is the non-LLM order, marked "
                    "degraded.", epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; others need an API key)")
    p.add_argument("--port", type=bounded(1, 65535), default=8000, help="default 8000")
    p.add_argument("--api-key", help="clients send 'Authorization: Bearer KEY' to /v1/ "
                                     "and /metrics")
    p.add_argument("--database", metavar="URL",
                   help="sessions database, a SQLAlchemy URL (default sqlite:///HOME/"
                        "service.sqlite)")
    p.add_argument("--max-in-flight", type=bounded(1, 256), default=4,
                   help="requests worked on at once (default 4)")
    p.add_argument("--queue-depth", type=bounded(0, 10000), default=32,
                   help="requests waiting beyond those; more are answered 429 (default 32)")
    p.add_argument("--max-body-bytes", type=bounded(1024), default=64 * 1024,
                   help="largest request body (default 65536)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="on a loopback address, a Host header name answered besides "
                        "localhost, 127.0.0.1 and [::1] (e.g. the name a reverse proxy "
                        "forwards); others get 421 (DNS rebinding). Repeatable")
    p.add_argument("--workers", type=bounded(1, 64), default=1,
                   help="service processes on the port (default 1); the work is Python, "
                        "so N workers use up to N cores; one embedded model serves them all")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from recagent.serve.runner import ServeOptions, open_service, run

    env = os.environ
    options = ServeOptions(
        host=args.host, port=args.port,
        api_key=args.api_key or env.get("RECAGENT_API_KEY") or None,
        database_url=args.database or env.get("RECAGENT_DATABASE_URL") or None,
        max_in_flight=args.max_in_flight, queue_depth=args.queue_depth,
        max_body_bytes=args.max_body_bytes, allowed_hosts=tuple(args.allowed_host))
    settings = settings_from_args(args)
    if args.workers > 1:
        from recagent.serve.workers import serve_workers

        return serve_workers(settings, options, args.workers,
                             announce=lambda line: print(line, flush=True))
    with open_service(settings, options) as (service, notes):
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        run(service, options, announce=lambda line: print(line, flush=True))
    return EXIT_OK
