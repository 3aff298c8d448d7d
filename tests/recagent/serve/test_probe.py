"""The service's failures an independent probe found (issue 28), as regressions: a Host
header from another site on loopback (DNS rebinding), valid JSON that Python's encoder
cannot answer with (NaN, a lone surrogate), plain lists of ids, chunked bodies over the
limit, the page's security headers, and slow clients (slowloris) on a real uvicorn."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from recagent.serve.app import create_app
from recagent.serve.protocol import MAX_CONNECTIONS, timed_protocol
from recagent.serve.schemas import RecommendRequest
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import MakeApp, build_service, check_items

LIKED = [{"item_id": "s1", "liked": True}, {"item_id": "s4", "rating": 5}]


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000",
                                  "127.0.0.1.attacker.example", ""])
def test_a_foreign_host_header_on_loopback_is_refused(make_client: MakeApp,
                                                      host: str) -> None:
    """Probe case 3: Host: attacker.example got 200/201 on a loopback service."""
    c = make_client(None, allowed_hosts=frozenset())
    headers = {"host": host, "origin": f"http://{host}"}
    for got in (c.post("/v1/recommend", json={"history": LIKED, "k": 3}, headers=headers),
                c.post("/v1/sessions", json={}, headers=headers), c.get("/", headers=headers)):
        assert got.status_code == 421 and "Host header" in got.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:1", "[::1]:8000",
                                  "proxy.example"])
def test_loopback_names_and_allowed_ones_are_answered(make_client: MakeApp, host: str) -> None:
    c = make_client(None, allowed_hosts=frozenset({"proxy.example"}))
    got = c.post("/v1/recommend", json={"history": LIKED, "k": 3}, headers={"host": host})
    assert got.status_code == 200


@pytest.mark.parametrize("body, named", [
    (b'{"history": [{"item_id": "s1", "rating": NaN}]}', "history.0.rating"),
    (b'{"history": [{"item_id": "s1", "rating": Infinity}]}', "history.0.rating"),
    (b'{"history": [{"item_id": "\\ud800"}]}', "lone surrogate"),
    (b'{"history": ["\\udfff"]}', "lone surrogate"),
    (b'{"history": ["s1"], "deadline_s": NaN}', "deadline_s"),
    (b'{"history": ["s1"], "filters": {"genres": ["\\ud800"]}}', "lone surrogate"),
])
def test_odd_json_is_a_4xx_naming_the_field(make_client: MakeApp, body: bytes,
                                            named: str) -> None:
    """Probe case 4: these were 500s (the error handler echoed values JSON cannot carry)."""
    got = make_client(None).post("/v1/recommend", content=body,
                                 headers={"content-type": "application/json"})
    assert got.status_code == 422 and named in got.json()["detail"], got.text


def test_a_lone_surrogate_in_a_chat_message_is_a_4xx(make_client: MakeApp) -> None:
    c = make_client(None)
    sid = c.post("/v1/sessions", json={}).json()["session_id"]
    got = c.post(f"/v1/sessions/{sid}/messages", content=b'{"text": "I loved \\ud83d"}',
                 headers={"content-type": "application/json"})
    assert got.status_code == 422 and "text" in got.json()["detail"]


@pytest.mark.parametrize("history", [["s1", "s4"], ["s1", {"item_id": "s4", "rating": 5}]])
def test_a_plain_list_of_ids_is_a_history(make_client: MakeApp, catalog: dict[str, Any],
                                          history: list[Any]) -> None:
    got = make_client(None).post("/v1/recommend", json={"history": history, "k": 3})
    assert got.status_code == 200, got.text
    check_items(got.json()["items"], catalog, {"s1", "s4"})


def test_numbers_are_ids_too() -> None:
    request = RecommendRequest.model_validate({"history": [1, "50", {"item_id": "7"}]})
    assert [e.item_id for e in request.history] == ["1", "50", "7"]
    assert request.history[0].rating is None and request.history[0].liked is None


@pytest.mark.parametrize("history", ["s1,s4", [True], [1.5], [None], [{"id": "s1"}],
                                     [["s1"]]])
def test_a_wrong_history_shape_lists_the_shapes_taken(make_client: MakeApp,
                                                      history: Any) -> None:
    got = make_client(None).post("/v1/recommend", json={"history": history})
    detail = got.json()["detail"]
    assert got.status_code == 422 and detail.startswith("history")
    assert 'item ids (["1", "50"] or [1, 50])' in detail and '"rating": 4' in detail


def test_a_chunked_body_over_the_limit_is_413(make_client: MakeApp) -> None:
    """Probe case 11: a 10 MB chunked body got FastAPI's 400, not the documented 413."""
    c = make_client(None)
    chunks = (b"x" * 65536 for _ in range(160))
    got = c.post("/v1/recommend", content=chunks, headers={"content-type": "application/json"})
    assert got.status_code == 413 and "65536" in got.json()["detail"]
    assert got.headers["connection"] == "close"
    metrics = c.get("/metrics").text
    assert 'status="413"' in metrics


def test_every_answer_carries_the_page_security_headers(make_client: MakeApp) -> None:
    """Probe case 11: the page had no CSP or X-Frame-Options."""
    c = make_client(None)
    for got in (c.get("/"), c.get("/static/app.js"), c.get("/healthz")):
        policy = got.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert got.headers["x-frame-options"] == "DENY"
        assert got.headers["x-content-type-options"] == "nosniff"


# ---- slow clients on a real server -------------------------------------------------------

HEADER_S = 1.0
BODY_S = 1.0
KILL_S = 30.0
"""How long a test waits for what must happen at once or within the timeouts above."""


@pytest.fixture
def server(mini_store: CatalogStore, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The app under uvicorn as `recagent serve` runs it (timed header protocol, connection
    limit), with 1 s timeouts, in a thread on a free loopback port."""
    service = build_service(mini_store, None, tmp_path / "db.sqlite", body_timeout_s=BODY_S)
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="error",
                            http=timed_protocol(HEADER_S), limit_concurrency=MAX_CONNECTIONS)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + KILL_S
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(KILL_S)
    sock.close()


def _get(address: tuple[str, int], path: str) -> bytes:
    with socket.create_connection(address, timeout=KILL_S) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                  .encode())
        return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_300_slow_header_sockets_neither_block_others_nor_stay_open(
        server: tuple[str, int]) -> None:
    """Probe case 2: 300 sockets that never finish their headers made every client get 503;
    now others are answered meanwhile, and each slow socket is closed by the server."""
    slow = []
    try:
        for _ in range(300):
            s = socket.create_connection(server, timeout=KILL_S)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(s)
        answer = _get(server, "/healthz")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        for s in slow:  # closed by the server: recv sees the end, or a reset when the
            # dribble reached the closed socket first (a hang fails by timeout)
            try:
                s.sendall(b"a")  # still dribbling
                assert s.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for s in slow:
            s.close()
    assert _get(server, "/healthz").startswith(b"HTTP/1.1 200")


def test_a_stalled_body_is_408_and_closed(server: tuple[str, int]) -> None:
    """Probe case 2: partly sent bodies were never timed out (8 of 8 open after 22 s)."""
    stalled = []
    try:
        for _ in range(8):
            s = socket.create_connection(server, timeout=KILL_S)
            s.sendall(b"POST /v1/recommend HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                      b'{"history"')
            stalled.append(s)
        for s in stalled:
            answer = _read_all(s)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"stalled" in answer
    finally:
        for s in stalled:
            s.close()


def test_a_broken_sessions_database_is_503_not_500(make_client: MakeApp,
                                                   tmp_path: Path) -> None:
    """Probe case 11: session writes on a full disk were a bare 500. Here the database
    refuses every write of a session (a trigger raising SQLite's own disk-full message):
    reads work, the write fails inside SQLite, as on a full disk."""
    c = make_client(None)
    sid = c.post("/v1/sessions", json={}).json()["session_id"]
    with sqlite3.connect(tmp_path / "db0.sqlite") as db:
        db.execute("CREATE TRIGGER full BEFORE UPDATE ON sessions "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    got = c.post(f"/v1/sessions/{sid}/messages", json={"text": "I loved Alien"})
    assert got.status_code == 503 and "sessions database" in got.json()["detail"]
    assert got.headers["retry-after"] == "5"


class FailingClient:
    """A fake LLM whose every call fails in transport (the server is down)."""

    model = "down"

    def complete(self, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        from recagent.errors import TransportError
        raise TransportError("connection refused")


def test_failed_steps_are_named_in_the_answer_and_counted_in_metrics(
        make_client: MakeApp) -> None:
    """Probe case 7, in the service: the step and the reason, and /metrics by step."""
    c = make_client(FailingClient())
    got = c.post("/v1/recommend", json={"history": LIKED, "k": 3}).json()
    assert got["degraded"] and got["degraded_steps"] == ["rank:transport", "explain:transport"]
    assert [d["code"] for d in got["trace"]["degradations"]] == got["degraded_steps"]
    metrics = c.get("/metrics").text
    assert 'recagent_degraded_steps_total{reason="transport",step="rank"} 1.0' in metrics
    assert 'recagent_degraded_steps_total{reason="transport",step="explain"} 1.0' in metrics
