"""Replicas on a real PostgreSQL (issue 28): two `recagent serve` processes on one
PostgreSQL database and one `chroma run` server; chat turns race on one session and on
sessions of their own, through both; one replica is SIGKILLed with turns in flight.
Whatever the kill interrupted, no turn is lost (every answered turn is in its session
once), none is duplicated, and the survivor answers every request without a 5xx.

PostgreSQL is Debian's (`make postgres`, run by `make test`): the test makes a throw-away
cluster in a tmp folder (initdb), starts it on a free loopback port (pg_ctl) as the
`postgres` user when run as root (the server refuses root), and removes it after."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from recagent.types import Item
from tests.recagent.serve.conftest import check_items
from tests.recagent.serve.test_process import chroma as chroma
from tests.recagent.serve.test_process import free_port
from tests.recagent.serve.test_process import home as home
from tests.recagent.serve.test_process import serve as serve

pytestmark = pytest.mark.integration

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
START_S = 60


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port; yields its SQLAlchemy URL."""
    if not INITDB:
        pytest.fail("PostgreSQL's initdb not found: `make postgres` (run by `make test`) "
                    "installs Debian's postgresql")
    bin_dir = Path(INITDB[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="recagent-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "recagent",
                                 "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=START_S)
    options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=50"
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
                                 "-l", str(folder / "server.log"), "-w", "-t", str(START_S),
                                 "start"]), check=True, capture_output=True,
                   timeout=START_S + 10)
    try:
        yield f"postgresql://recagent@127.0.0.1:{port}/postgres"  # as docs/serve.md has it
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                     "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _turn(service: Any, sid: str, text: str) -> tuple[str, str, int | str]:
    """(session, text, status), or the transport error's name if no answer came."""
    try:
        return sid, text, service.http.post(f"/v1/sessions/{sid}/messages",
                                            json={"text": text}).status_code
    except httpx.HTTPError as e:
        return sid, text, type(e).__name__


def _said(service: Any, sid: str) -> list[str]:
    view = service.http.get(f"/v1/sessions/{sid}").json()
    return [m["text"] for m in view["messages"] if m["role"] == "user"]


def test_two_replicas_on_postgresql_lose_no_turn_when_one_is_killed(
        serve: Any, postgres: str, catalog: dict[str, Item]) -> None:
    a = serve("--database", postgres, "--no-llm")
    b = serve("--database", postgres, "--no-llm")
    shared = a.http.post("/v1/sessions", json={"k": 4}).json()["session_id"]
    own = [(a, b)[n % 2].http.post("/v1/sessions", json={}).json()["session_id"]
           for n in range(4)]
    assert b.http.get(f"/v1/sessions/{shared}").status_code == 200  # one database

    # 1. turns racing on one session and on sessions of their own, through both replicas
    plan = [((a, b)[n % 2], shared, f"shared turn {n} no horror") for n in range(6)]
    plan += [((a, b)[n % 2], sid, f"own turn {n} I loved Toy Story")
             for n, sid in enumerate(own)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda p: _turn(*p), plan))
    assert [status for *_, status in first] == [200] * len(plan), first

    # 2. replica a SIGKILLed while it holds turns in flight; b goes on meanwhile
    doomed = [(a, shared if n % 2 else own[n % 4], f"killed turn {n} something romantic")
              for n in range(6)]
    alive = [(b, shared if n % 2 else own[n % 4], f"survivor turn {n} nothing before 1990")
             for n in range(8)]
    with ThreadPoolExecutor(14) as pool:
        pending = [pool.submit(_turn, *p) for p in doomed + alive]
        time.sleep(0.3)  # the turns are on their way; some are being written
        a.proc.send_signal(signal.SIGKILL)
        second = [f.result() for f in pending]
    a.proc.wait(timeout=30)
    survivor = second[len(doomed):]
    assert [status for *_, status in survivor] == [200] * len(alive), survivor

    # 3. after the kill, b still answers on every session
    after = [_turn(b, sid, "any year") for sid in [shared, *own]]
    assert [status for *_, status in after] == [200] * len(after), after

    # every turn answered 200 is in its session exactly once; a turn the kill cut off
    # is there once or not at all; no session holds a text twice
    answered = [(sid, text) for sid, text, status in first + second + after if status == 200]
    cut = [(sid, text) for sid, text, status in second if status != 200]
    for sid in [shared, *own]:
        said = Counter(_said(b, sid))
        assert all(n == 1 for text, n in said.items() if text != "any year"), said
        assert said["any year"] == 1
        for s, text in answered:
            if s == sid:
                assert said[text] == 1, (sid, text, said)
        for s, text in cut:
            if s == sid:
                assert said[text] <= 1
    for sid in [shared, *own]:
        check_items(b.http.get(f"/v1/sessions/{sid}").json()["items"], catalog, set())
    print(f"\nPostgreSQL replicas: {len(answered)} turns answered, {len(cut)} cut by SIGKILL, "
          "0 lost, 0 duplicated, 0 5xx on the survivor")
