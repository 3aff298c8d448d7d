"""Running the service: the parts from Settings (through recagent.wiring), the embedded
LLM under a supervisor, the session database, and uvicorn on a checked address.

Binds 127.0.0.1 unless told otherwise; any other address needs an API key, since the
API would be reachable from other machines. SIGTERM and Ctrl-C stop uvicorn gracefully:
it stops accepting, lets the requests in flight finish (at most `graceful_s`), then the
parts are closed; sessions are in the database after every answer, so none is lost.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import uvicorn

from recagent.errors import ConfigError
from recagent.serve.app import DEADLINE_S, MAX_BODY_BYTES, Service, create_app
from recagent.serve.engine import Engine
from recagent.serve.limits import Admission
from recagent.serve.metrics import ServiceMetrics
from recagent.serve.protocol import HEADER_TIMEOUT_S, MAX_CONNECTIONS, timed_protocol
from recagent.serve.sessions import SessionStore, default_url
from recagent.serve.supervisor import LLMSupervisor
from recagent.wiring import Settings, build_agent, embedded_server, usable_home
from recagent.wiring.live import open_live_parts


@dataclass(frozen=True)
class ServeOptions:
    """How the service runs (the CLI's flags); the parts come from Settings."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    database_url: str | None = None
    """None: SQLite at HOME/service.sqlite."""
    max_in_flight: int = 4
    queue_depth: int = 32
    max_body_bytes: int = MAX_BODY_BYTES
    graceful_s: float = 60.0
    allowed_hosts: tuple[str, ...] = ()
    """Host header names answered on a loopback bind besides the loopback ones."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Only loopback without a key: elsewhere anyone who can reach the port could use it."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"binding to {host} makes the service reachable from other "
                          "machines: give an API key (--api-key or RECAGENT_API_KEY), or "
                          "bind 127.0.0.1")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_probe(base_url: str, timeout_s: float = 2.0) -> Callable[[], bool]:
    """An OpenAI-compatible server is up when GET /models answers 200."""
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"{base_url.rstrip('/')}/models",
                                        timeout=timeout_s) as r:
                return int(r.status) == 200
        except OSError:
            return False
    return probe


@contextmanager
def open_service(settings: Settings, options: ServeOptions) -> Iterator[
        tuple[Service, tuple[str, ...]]]:
    """The service's parts for the duration, and the configuration notes to print.
    The embedded model (no LLM URL given) runs supervised on a port of its own, and the
    parts reach it by URL like any server; the settings' deadline (default DEADLINE_S)
    bounds each LLM call and is each request's default deadline."""
    check_bind(options.host, options.api_key)
    deadline = settings.llm.deadline_s or DEADLINE_S
    llm = settings.llm.model_copy(update={"deadline_s": deadline})
    health: Callable[[], bool] | None = None
    with ExitStack() as stack:
        if settings.ranker is not None and llm.engine == "http" and not llm.base_url:
            server = embedded_server(settings, llm, port=free_port())
            supervisor = stack.enter_context(LLMSupervisor(server))
            llm = llm.model_copy(update={"base_url": server.base_url, "model": server.model})
            health = supervisor.healthy
        elif settings.ranker is not None:
            health = server_probe(llm.base_url) if llm.base_url else (lambda: True)
        live = stack.enter_context(open_live_parts(settings.model_copy(update={"llm": llm})))
        parts = live.current()
        url = options.database_url or default_url(usable_home(settings))
        sessions = SessionStore(url)
        stack.callback(sessions.close)
        admission = Admission(max_in_flight=options.max_in_flight,
                              queue_depth=options.queue_depth)
        stack.callback(admission.close)
        engine = Engine(parts.recommender, parts.client, parts.prompts, sessions,
                        agent=(lambda: build_agent(parts)) if parts.client else None,
                        current=lambda: live.current().recommender)
        yield Service(engine=engine, sessions=sessions, admission=admission,
                      metrics=ServiceMetrics(admission), deadline_s=deadline,
                      api_key=options.api_key, max_body_bytes=options.max_body_bytes,
                      llm_health=health,
                      allowed_hosts=frozenset(options.allowed_hosts)
                      if is_loopback(options.host) else None), parts.notes


def run(service: Service, options: ServeOptions,
        announce: Callable[[str], object] = print, *,
        sockets: list[socket.socket] | None = None,
        stop: threading.Event | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C, then stop gracefully (see the module's note);
    `sockets`: a listening socket shared with other workers (else bind host and port);
    `stop`: set by a SIGTERM that came before this call (a worker's start-up), so that
    uvicorn starts and stops at once instead of serving on."""
    config = uvicorn.Config(create_app(service), host=options.host, port=options.port,
                            log_level="warning", access_log=False,
                            timeout_graceful_shutdown=int(options.graceful_s),
                            http=timed_protocol(HEADER_TIMEOUT_S),
                            limit_concurrency=MAX_CONNECTIONS)
    server = uvicorn.Server(config)

    def on_sigterm(signum: int, frame: object) -> None:
        """Until uvicorn's own handler is in place, and when uvicorn raises the signal
        again under this handler after its graceful stop: a flag, never an exception,
        so the parts are closed and the exit is clean (0)."""
        server.should_exit = True

    shown = f"[{options.host}]" if ":" in options.host else options.host
    if sockets is None:
        announce(f"serving recagent at http://{shown}:{options.port} (API docs at /docs; "
                 "Ctrl-C or SIGTERM to stop)")
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main else None
    if stop is not None and stop.is_set():  # read after the handler is in place: none lost
        server.should_exit = True
    try:
        server.run(sockets=sockets)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
