"""ASGI middleware of the service: request metrics, the body size and time limits, the Host
check, the page's security headers and the API key.

Plain ASGI (no BaseHTTPMiddleware): they wrap `receive`/`send` without buffering bodies,
so a request body is counted as it arrives and refused once it passes the limit."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from recagent.serve.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(send: Send, status: int, detail: str,
                    headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    """Counts every answer by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            name = str(getattr(route, "path", "unmatched"))
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - began)
            if status == 429:
                self.metrics.rejected.inc()


class _Refused(Exception):
    """The body was refused (413 or 408), and the answer already sent."""


CLOSE = [(b"connection", b"close")]
"""An answer before the whole body arrived: the connection cannot carry another request."""


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: by its Content-Length at once, else as it streams;
    408 when the client pauses more than `timeout_s` while sending it (a slow-body attack
    would otherwise hold a slot for ever).

    The refusal is sent from inside `receive`, before the error reaches the app: FastAPI
    turns any error while it reads a body into its own 400, which is then dropped."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await send_json(send, 413, f"the request body has {declared.decode(errors='replace')}"
                                       f" bytes; the limit is {self.max_bytes}", CLOSE)
            return
        received, started, refused = 0, False, False

        async def refuse(status: int, detail: str) -> None:
            nonlocal refused
            if not started and not refused:
                refused = True
                await send_json(send, status, detail, CLOSE)
            raise _Refused

        async def receiving() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                await refuse(408, f"the request body stalled: nothing arrived for "
                                  f"{self.timeout_s:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    await refuse(413, f"the request body is over the limit of "
                                      f"{self.max_bytes} bytes")
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to a body it could not read: ours went out
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_Refused):  # the refusal is already answered
            await self.app(scope, receiving, sending)


class HostCheckMiddleware:
    """On a loopback address, only requests naming this machine (localhost, 127.0.0.1,
    [::1], or a name the operator allowed) in their Host header are answered: a web page
    on another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its
    own name, and gets 421. `allowed` None: any Host (a public bind needs an API key)."""

    LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed is None else self.LOOPBACK | {
            a.lower() for a in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if name not in self.allowed:
            shown = host.encode("ascii", "backslashreplace").decode()[:100]
            await send_json(send, 421, f"the Host header {shown!r} is not an address of this "
                                       "service; open it as http://127.0.0.1:PORT, or allow "
                                       "the name with --allowed-host")
            return
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """'Example.org:8000' → 'example.org'; '[::1]:80' → '[::1]'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


PAGE_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
     b"object-src 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
"""Every answer: the page runs only its own script and style, is never framed (click-
jacking), and no answer is sniffed into another type."""


class SecurityHeadersMiddleware:
    """Adds PAGE_HEADERS to every answer (the page, its files and the API alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in PAGE_HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, sending)


class ApiKeyMiddleware:
    """With a key set, /v1/ and /metrics need `Authorization: Bearer KEY` or `X-API-Key`;
    the page, its files, /healthz, /readyz and the OpenAPI docs stay open."""

    PROTECTED = ("/v1/", "/metrics")

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app, self.api_key = app, api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.api_key is None or scope["type"] != "http"
                or not str(scope["path"]).startswith(self.PROTECTED)):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-api-key", b"")
        bearer = headers.get(b"authorization", b"")
        if bearer.lower().startswith(b"bearer "):
            given = given or bearer[7:].strip()
        if not hmac.compare_digest(given, self.api_key.encode()):
            await send_json(send, 401, "missing or wrong API key: send the header "
                                       "'Authorization: Bearer <key>' (or 'X-API-Key: <key>')",
                            [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)
