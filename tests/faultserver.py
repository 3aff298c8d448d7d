"""A chat-completions server on loopback that misbehaves on demand, for LLM client tests.

    with FaultServer() as server:                  # answers "ok" unless told otherwise
        server.script("500", "close", "ok")        # the next requests, in order
        client = OpenAIClient(base_url=server.url, model="m")
        ...
        assert server.count == 3

A fault is a name (FAULTS) or a `Reply` (any status and body). The server runs a
`ThreadingHTTPServer` on 127.0.0.1 in a daemon thread; `stop` (or leaving the `with`)
releases requests it holds ("hang", "dribble") and shuts it down.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Fault = Literal["ok", "500", "503", "429", "400", "401", "404", "close", "cut", "hang",
                "dribble", "not_json", "truncated", "no_choices", "not_completion"]
FAULTS: tuple[Fault, ...] = ("ok", "500", "503", "429", "400", "401", "404", "close", "cut",
                             "hang", "dribble", "not_json", "truncated", "no_choices",
                             "not_completion")
"""ok: a valid completion; 500/503/429/400/401/404: that status with an OpenAI error body;
close: close the connection without answering; cut: headers and half the body, then
close; hang: answer nothing until released; dribble: a valid completion, one byte per
`dribble_interval_s`; not_json: 200 with an HTML page; truncated: 200 with JSON cut in
half (a complete HTTP response); no_choices: a completion with an empty `choices`;
not_completion: 200 with JSON that is no completion at all."""

OK_TEXT = '{"ranking": []}'
OK_BODY: dict[str, Any] = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": OK_TEXT},
                 "logprobs": {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                                           "top_logprobs": [
                                               {"token": "A", "logprob": -0.1, "bytes": None},
                                               {"token": "B", "logprob": -2.5, "bytes": None}]}]}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": kind}}


@dataclass(frozen=True)
class Reply:
    """A canned answer: `status` with `body` (a dict is sent as JSON, bytes as they are)."""

    status: int = 200
    body: dict[str, Any] | bytes | None = None
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(OK_BODY if self.body is None else self.body).encode()


_CANNED: dict[str, Reply] = {
    "ok": Reply(),
    "500": Reply(500, error_body("internal error", "server_error")),
    "503": Reply(503, error_body("busy", "server_error")),
    "429": Reply(429, error_body("slow down", "rate_limit_error")),
    "400": Reply(400, error_body("messages must not be empty")),
    "401": Reply(401, error_body("bad key", "authentication_error")),
    "404": Reply(404, error_body("no such model", "not_found_error")),
    "not_json": Reply(200, b"<html><body><h1>Gateway warming up</h1></body></html>",
                      "text/html"),
    "truncated": Reply(200, json.dumps(OK_BODY).encode()[:60]),
    "no_choices": Reply(200, {**OK_BODY, "choices": []}),
    "not_completion": Reply(200, {"status": "ok", "detail": "this is no completion"}),
}


class FaultServer:
    """Answers POSTs (any path) with the scripted faults, then with `default`.

    `requests` holds every request body (parsed JSON; {} if it was none), `count` their
    number. `dribble_interval_s` paces "dribble"; `hold_s` caps how long "hang" and
    "dribble" hold a connection if nobody releases them."""

    def __init__(self, default: Fault | Reply = "ok", *, dribble_interval_s: float = 0.05,
                 hold_s: float = 60.0) -> None:
        self.default = default
        self.dribble_interval_s = dribble_interval_s
        self.hold_s = hold_s
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        """Replies cut short because the client closed the connection."""
        self.released = threading.Event()
        self._script: list[Fault | Reply] = []
        self._lock = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (…/v1)."""
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> int:
        """The request count once it reaches `n` (or after `timeout_s`): a request sent
        by a client that has already given up may still be on its way."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.requests) >= n, timeout_s)
            return len(self.requests)

    def wait_for_disconnects(self, n: int, timeout_s: float = 10.0) -> int:
        """`disconnects` once it reaches `n` (or after `timeout_s`)."""
        with self._lock:
            self._lock.wait_for(lambda: self.disconnects >= n, timeout_s)
            return self.disconnects

    def script(self, *faults: Fault | Reply) -> None:
        """The next requests get these, in order (after any still scripted)."""
        for fault in faults:
            if isinstance(fault, str) and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._script.extend(faults)

    def start(self) -> FaultServer:
        self.released.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="faultserver")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, body: bytes) -> Fault | Reply:
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = {}
        with self._lock:
            self.requests.append(parsed if isinstance(parsed, dict) else {"body": parsed})
            self._lock.notify_all()
            return self._script.pop(0) if self._script else self.default

    def _respond(self, handler: BaseHTTPRequestHandler, fault: Fault | Reply) -> None:
        handler.close_connection = True
        if isinstance(fault, Reply) or fault in _CANNED:
            reply = fault if isinstance(fault, Reply) else _CANNED[fault]
            _send(handler, reply.status, reply.payload(), reply.content_type)
        elif fault == "close":
            return
        elif fault == "cut":
            data = Reply().payload()
            _headers(handler, 200, len(data), "application/json")
            handler.wfile.write(data[: len(data) // 2])
        elif fault == "hang":
            self.released.wait(self.hold_s)
        elif fault == "dribble":
            data = Reply().payload()
            _headers(handler, 200, len(data), "application/json")
            for i in range(len(data)):
                if self.released.wait(self.dribble_interval_s):
                    return
                handler.wfile.write(data[i: i + 1])
                handler.wfile.flush()
        else:
            raise AssertionError(f"unhandled fault {fault!r}")


@contextmanager
def fault_server(default: Fault | Reply = "ok", **options: Any) -> Iterator[FaultServer]:
    """A started FaultServer, stopped on exit; a pytest fixture is `with fault_server() as
    s: yield s`."""
    with FaultServer(default, **options) as server:
        yield server


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                server._respond(self, server._next(body))
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                with server._lock:  # the client gave up (e.g. at its deadline)
                    server.disconnects += 1
                    server._lock.notify_all()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _headers(handler: BaseHTTPRequestHandler, status: int, length: int,
             content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.flush()


def _send(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
    _headers(handler, status, len(data), content_type)
    handler.wfile.write(data)
