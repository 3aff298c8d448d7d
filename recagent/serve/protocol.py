"""The HTTP/1.1 connection of `recagent serve`: uvicorn's h11 protocol with a deadline on
each request's headers.

uvicorn times out idle keep-alive connections but not a client that opens a connection and
sends its headers a byte at a time (slowloris): such sockets used to hold their slot for
ever, and 300 of them made every other client get 503. Here each request's headers must
arrive whole within `header_timeout_s` of the connection opening (or of the previous
answer on a kept-alive connection), else the connection is closed. Slow bodies are timed
out by `BodyLimitMiddleware` (recagent/serve/middleware.py), where the body is read.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
"""Seconds a client has to send a request's headers (a browser sends them at once)."""
BODY_TIMEOUT_S = 30.0
"""Seconds a client may pause while sending a request's body (bodies are at most 64 KiB)."""
MAX_CONNECTIONS = 4096
"""Open connections before new requests get 503 (uvicorn's `limit_concurrency`): well
above what slow sockets can hold open within HEADER_TIMEOUT_S from one client."""


class TimedH11Protocol(H11Protocol):
    """H11Protocol that closes a connection whose request headers are late."""

    header_timeout_s: float = HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers were parsed
            self._headers_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()  # the next request on this kept-alive connection

    def _await_headers(self) -> None:
        self._headers_arrived()
        self._headers_due = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_arrived(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        self._headers_due = None
        if self.cycle is None or self.cycle.response_complete:  # no request in progress
            self.transport.close()


def timed_protocol(header_timeout_s: float) -> type[TimedH11Protocol]:
    """The protocol class for uvicorn's `http=` with this header deadline."""
    return type("TimedH11", (TimedH11Protocol,), {"header_timeout_s": header_timeout_s})
