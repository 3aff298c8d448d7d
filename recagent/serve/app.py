"""The FastAPI app of `recagent serve`, built from explicit parts (`Service`).

Routes are thin: validate (schemas), send the blocking work through the bounded pool
with the request's deadline (limits.Admission → engine.Engine, or the engine's non-LLM
fallback past the deadline), save what a session operation changed, and shape the answer
(views). Errors are 4xx with {"detail": "..."} naming the problem; 429 and 503 carry
Retry-After. OpenAPI at /docs and /openapi.json.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from recagent.errors import ConfigError, EmptyCatalogError, IncompleteCatalogError
from recagent.serve.engine import CatalogUnavailable, Engine, Outcome
from recagent.serve.limits import Admission, Overloaded
from recagent.serve.metrics import ServiceMetrics
from recagent.serve.middleware import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    HostCheckMiddleware,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
)
from recagent.serve.protocol import BODY_TIMEOUT_S
from recagent.serve.schemas import (
    SESSION_ID_PATTERN,
    FeedbackRequest,
    Health,
    ItemsResponse,
    MessageRequest,
    NewSession,
    Readiness,
    RecommendRequest,
    RecommendResponse,
    RemoveRequest,
    SessionView,
    invalid_request,
)
from recagent.serve.sessions import SessionConflict, SessionNotFound, SessionStore
from recagent.serve.views import catalog_item, recommend_response, session_view

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
DEADLINE_S = 30.0
"""A request's deadline when neither the settings nor the request name one."""
MAX_BODY_BYTES = 64 * 1024
PROBE_S = 3.0
"""Longest a readiness probe waits for Chroma or the LLM."""

SessionId = Annotated[str, PathParam(pattern=SESSION_ID_PATTERN,
                                     description="32 lowercase hex characters")]


@dataclass
class Service:
    """Everything the app runs on; the caller owns their lifetimes (open_service)."""

    engine: Engine
    sessions: SessionStore
    admission: Admission
    metrics: ServiceMetrics
    deadline_s: float = DEADLINE_S
    api_key: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    llm_health: Callable[[], bool] | None = None
    """None: the service runs without an LLM (readyz says llm: null)."""
    static_dir: Path = field(default=STATIC)
    allowed_hosts: frozenset[str] | None = None
    """Host header names answered besides localhost, 127.0.0.1 and [::1]; None: any (a
    public bind, behind its API key). A loopback service sets it (DNS rebinding)."""
    body_timeout_s: float = BODY_TIMEOUT_S


def create_app(service: Service) -> FastAPI:
    engine, admission, sessions = service.engine, service.admission, service.sessions

    app = FastAPI(title="recagent", version="0.1.0",
                  description="Recommendations and a chat over a Chroma catalog.")
    _errors(app)

    def deadline_of(asked: float | None) -> float:
        return time.monotonic() + (asked or service.deadline_s)

    turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def session_op(session_id: str, kind: str, op: Callable[[bool, float], Outcome],
                         deadline: float) -> SessionView:
        """One change to a session: one at a time per session in this process, and redone
        on the fresh state when another replica saved the session meanwhile (409 once
        the deadline has passed)."""
        lock = turns.setdefault(session_id, asyncio.Lock())
        async with lock:
            while True:
                outcome, _ = await admission.run(
                    lambda: op(False, deadline),
                    (lambda: op(True, deadline)) if engine.uses_llm else None, deadline)
                try:
                    saved = await asyncio.to_thread(sessions.save, outcome.record,
                                                    feedback=outcome.feedback)
                    break
                except SessionConflict:
                    if time.monotonic() >= deadline:
                        raise
        service.metrics.answered(kind, outcome.trace)
        return session_view(saved)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        index = service.static_dir / "index.html"
        if not index.is_file():
            return JSONResponse({"detail": "the chat page is not installed"}, 404)
        return FileResponse(index)

    if service.static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=service.static_dir), name="static")

    @app.get("/healthz")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", responses={503: {"model": Readiness}})
    async def readyz() -> JSONResponse:
        chroma = await _probe(engine.catalog_up)
        llm = await _probe(service.llm_health) if service.llm_health else None
        ready = Readiness(status="ready" if chroma else "not_ready", chroma=chroma, llm=llm)
        return JSONResponse(ready.model_dump(), 200 if chroma else 503)

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/items")
    async def items(q: Annotated[str, Query(min_length=1, max_length=200)],
                    limit: Annotated[int, Query(ge=1, le=50)] = 10) -> ItemsResponse:
        deadline = deadline_of(None)
        found = await asyncio.to_thread(engine.with_catalog, lambda: engine.search(q, limit),
                                        deadline)
        return ItemsResponse(items=[catalog_item(i) for i in found])

    @app.post("/v1/recommend")
    async def recommend(body: RecommendRequest) -> RecommendResponse:
        deadline = deadline_of(body.deadline_s)

        def run(fallback: bool) -> Any:
            return engine.recommend(body.history, body.k, body.filters, fallback=fallback,
                                    deadline=deadline)

        rec, _ = await admission.run(lambda: run(False),
                                     (lambda: run(True)) if engine.uses_llm else None, deadline)
        service.metrics.answered("recommend", rec.trace)
        return recommend_response(rec)

    @app.post("/v1/sessions", status_code=201)
    async def new_session(body: Annotated[NewSession | None, Body()] = None) -> SessionView:
        body = body or NewSession()
        record = engine.new_session(body.k, body.agent)
        return session_view(await asyncio.to_thread(sessions.create, record))

    @app.get("/v1/sessions/{session_id}")
    async def get_session(session_id: SessionId) -> SessionView:
        return session_view(await asyncio.to_thread(sessions.get, session_id))

    @app.post("/v1/sessions/{session_id}/messages")
    async def message(session_id: SessionId, body: MessageRequest) -> SessionView:
        return await session_op(session_id, "message", lambda fb, d: engine.message(
            session_id, body.text, fallback=fb, deadline=d), deadline_of(body.deadline_s))

    @app.post("/v1/sessions/{session_id}/feedback")
    async def feedback(session_id: SessionId, body: FeedbackRequest) -> SessionView:
        return await session_op(session_id, "feedback", lambda fb, d: engine.feedback(
            session_id, body.item_id, body.kind, fallback=fb, deadline=d),
            deadline_of(body.deadline_s))

    @app.post("/v1/sessions/{session_id}/profile/remove")
    async def remove(session_id: SessionId, body: RemoveRequest) -> SessionView:
        return await session_op(session_id, "remove", lambda fb, d: engine.remove(
            session_id, body.field, body.value, fallback=fb, deadline=d),
            deadline_of(body.deadline_s))

    app.add_middleware(ApiKeyMiddleware, api_key=service.api_key)
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.max_body_bytes,
                       timeout_s=service.body_timeout_s)
    app.add_middleware(HostCheckMiddleware, allowed=service.allowed_hosts)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)  # counts every answer
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: on every answer
    return app


async def _probe(check: Callable[[], bool]) -> bool:
    try:
        return await asyncio.wait_for(asyncio.to_thread(check), PROBE_S)
    except Exception:
        return False


def _detail(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    """{"detail": message}; text that UTF-8 cannot carry (a lone surrogate a client sent)
    is escaped, never a 500."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"detail": text}, status, headers=headers)


def _errors(app: FastAPI) -> None:
    """recagent's errors as HTTP answers; the most specific handler wins."""

    def handle(kind: type[Exception], status: int,
               retry_after: Callable[[Any], int | None] = lambda e: None) -> None:
        async def handler(_: Request, error: Exception) -> JSONResponse:
            return _detail(status, str(error), retry_after(error))
        app.add_exception_handler(kind, handler)

    handle(ConfigError, 422)  # bad input: unknown ids, k over the candidates, a bad chip
    handle(SessionNotFound, 404)
    handle(SessionConflict, 409)
    handle(Overloaded, 429, lambda e: e.retry_after_s)
    handle(CatalogUnavailable, 503, lambda e: 5)
    handle(EmptyCatalogError, 503, lambda e: 30)
    handle(IncompleteCatalogError, 503, lambda e: 30)

    async def database(_: Request, error: Exception) -> JSONResponse:
        # a full disk, a lost connection, a broken file: the session was not changed
        cause = getattr(error, "orig", None) or error
        return _detail(503, f"the sessions database could not be read or written "
                            f"({type(cause).__name__}: {str(cause)[:200]}); nothing was "
                            "changed, try again", 5)
    app.add_exception_handler(DBAPIError, database)

    async def invalid(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ValidationError | RequestValidationError)
        return _detail(422, invalid_request(error.errors()))
    app.add_exception_handler(ValidationError, invalid)
    # FastAPI's own answer echoes the input, which JSON cannot always carry (NaN, a lone
    # surrogate: a 500); this one names the field and what is wrong, never the value.
    app.add_exception_handler(RequestValidationError, invalid)
