"""The bounded pool: refusal past its depth, the fallback past the deadline, and slots
held by abandoned jobs until they really end."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from recagent.errors import ConfigError
from recagent.serve.limits import Admission, Overloaded


def test_answers_from_the_job_in_time() -> None:
    pool = Admission(max_in_flight=1, queue_depth=0)
    got = asyncio.run(pool.run(lambda: "job", lambda: "fallback", time.monotonic() + 30))
    assert got == ("job", False)
    assert pool.busy == 0


def test_past_the_deadline_the_fallback_answers_and_the_job_keeps_its_slot() -> None:
    release = threading.Event()
    pool = Admission(max_in_flight=1, queue_depth=0)

    async def scenario() -> tuple[tuple[str, bool], int]:
        got = await pool.run(lambda: release.wait(10) and "job", lambda: "fallback",
                             time.monotonic() + 0.1)
        busy = pool.busy  # the abandoned job still runs
        with pytest.raises(Overloaded) as refused:
            await pool.run(lambda: "x", lambda: "y", time.monotonic() + 5)
        assert refused.value.retry_after_s == 1
        return got, busy

    got, busy = asyncio.run(scenario())
    assert got == ("fallback", True) and busy == 1
    release.set()
    for _ in range(100):  # the slot comes back once the job ends
        if pool.busy == 0:
            break
        time.sleep(0.05)
    assert pool.busy == 0 and pool.rejected == 1
    pool.close()


def test_a_queued_job_whose_deadline_passed_never_runs() -> None:
    release = threading.Event()
    ran: list[str] = []
    pool = Admission(max_in_flight=1, queue_depth=1)

    async def scenario() -> list[tuple[str, bool]]:
        first = asyncio.ensure_future(pool.run(lambda: release.wait(10) and "first",
                                               lambda: "fb1", time.monotonic() + 5))
        await asyncio.sleep(0.05)
        second = await pool.run(lambda: ran.append("second") or "second", lambda: "fb2",
                                time.monotonic() + 0.1)
        release.set()
        return [await first, second]

    assert asyncio.run(scenario()) == [("first", False), ("fb2", True)]
    time.sleep(0.1)
    assert ran == [] and pool.busy == 0


def test_job_errors_reach_the_caller() -> None:
    pool = Admission()

    def broken() -> str:
        raise ConfigError("bad input")

    with pytest.raises(ConfigError, match="bad input"):
        asyncio.run(pool.run(broken, lambda: "fallback", time.monotonic() + 5))
    assert pool.busy == 0


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_in_flight"):
        Admission(max_in_flight=0)


def test_a_request_that_could_not_get_a_slot_in_time_falls_back_at_once() -> None:
    release = threading.Event()
    ran: list[str] = []
    pool = Admission(max_in_flight=1, queue_depth=5)

    async def scenario() -> tuple[str, bool]:
        await pool.run(lambda: time.sleep(0.3) or "warm", lambda: "fb", time.monotonic() + 5)
        assert pool.job_s is not None and pool.job_s >= 0.3  # jobs take ~0.3 s here
        busy = asyncio.ensure_future(pool.run(lambda: release.wait(10) and "busy",
                                              lambda: "fb", time.monotonic() + 10))
        await asyncio.sleep(0.05)
        # the slot is taken and a job takes 0.3 s: a 0.2 s deadline cannot be met
        got = await pool.run(lambda: ran.append("x") or "job", lambda: "fallback",
                             time.monotonic() + 0.2)
        release.set()
        await busy
        return got

    assert asyncio.run(scenario()) == ("fallback", True)
    assert ran == [] and pool.early == 1
