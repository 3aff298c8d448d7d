"""Several service processes on one port: the recommendation work is Python, and one
process runs it on one core at a time (the GIL), so `recagent serve --workers N` forks N
workers that accept on one listening socket (the kernel hands each connection to one).

Each worker opens its own parts (store image, retriever, sessions database connection)
after the fork, so nothing with threads or open files crosses it. The embedded LLM is
one process for all: the parent starts it (supervised) on a port chosen before the fork,
and the workers reach it by URL like any server, so the model is loaded once and kept
warm between requests (until it is up, /readyz says llm: false and LLM steps degrade).
SIGTERM or Ctrl-C to the parent is passed to every worker, which
stops gracefully (finishing what it holds); the parent then stops the model.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress

from recagent.errors import ConfigError
from recagent.serve.runner import ServeOptions, check_bind, free_port, open_service, run
from recagent.serve.supervisor import LLMSupervisor
from recagent.wiring import Settings, embedded_server


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve_workers(settings: Settings, options: ServeOptions, workers: int,
                  announce: Callable[[str], object] = print) -> int:
    """Run `workers` service processes until SIGTERM or Ctrl-C; the exit code is the first
    failing worker's (0 when all stopped cleanly)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    check_bind(options.host, options.api_key)
    sock = listening_socket(options.host, options.port)
    with ExitStack() as stack:
        stack.callback(sock.close)
        server = None
        if settings.ranker is not None and settings.llm.engine == "http" \
                and not settings.llm.base_url:  # one embedded model for every worker
            server = embedded_server(settings, settings.llm, port=free_port())
            settings = settings.model_copy(update={"llm": settings.llm.model_copy(
                update={"base_url": server.base_url, "model": server.model})})
        # SIGTERM and Ctrl-C are held from before the fork until each process has its
        # handlers (the workers theirs, the parent the one that passes them on), so a
        # signal in between is delivered late, never lost or taken by the wrong handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            children = [_fork(settings, options, sock) for _ in range(workers)]
            stack.enter_context(_passing_on(children))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if server is not None:
            stack.enter_context(LLMSupervisor(server))
        shown = f"[{options.host}]" if ":" in options.host else options.host
        announce(f"serving recagent at http://{shown}:{options.port} with {workers} workers "
                 "(API docs at /docs; Ctrl-C or SIGTERM to stop)")
        return _wait(children)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _fork(settings: Settings, options: ServeOptions, sock: socket.socket) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the worker: its own parts, the shared socket
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM
        # A SIGTERM during start-up only sets a flag: an exception raised from a handler
        # can land in a finalizer or a native callback and be swallowed, and the worker
        # would serve on, orphaned. `run` reads the flag and stops right after starting.
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        with open_service(settings, options) as (service, _):
            run(service, options, announce=lambda _: None, sockets=[sock], stop=stop)
        code = 0
    except BaseException as e:  # a worker reports and exits; it never returns to the CLI
        print(f"error: worker {os.getpid()}: {e}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


@contextmanager
def _passing_on(children: list[int]) -> Iterator[None]:
    """The parent's SIGTERM and Ctrl-C go to every worker, which stops gracefully."""
    def stop(signum: int, frame: object) -> None:
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _wait(children: list[int]) -> int:
    code = 0
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        got = os.waitstatus_to_exitcode(status)
        code = code or (got if got >= 0 else 128 - got)  # killed by a signal: 128 + it
    return code
