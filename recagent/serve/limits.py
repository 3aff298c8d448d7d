"""Backpressure and deadlines: the blocking recommender runs in a bounded thread pool.

At most `max_in_flight` jobs run at once and at most `queue_depth` more wait; past that a
request is refused at once (`Overloaded`, answered 429 with Retry-After) instead of
piling up until every request times out. Each job has a deadline: if it passes while the
job waits or runs, the caller stops waiting and runs the job's `fallback` (the non-LLM
answer) in a small pool of its own. A job abandoned this way keeps its slot until it
really ends (a job that never started is dropped), so the pool's size stays the truth
about the work the machine does.

The fallback costs time too (retrieval, on the same cores), and a burst of requests
reaches its deadlines together; so the caller stops waiting early enough for the
fallbacks already queued to be done by the deadline, and a request that would only get
a slot after its deadline (by the jobs ahead of it and how long jobs take) falls back at
once instead of waiting to. With a slot free the job is always tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from recagent.errors import ConfigError

T = TypeVar("T")
SMOOTHING = 0.2
"""Weight of the newest duration in the running averages of job and fallback times."""
FALLBACK_PRIOR_S = 0.5
"""A fallback's seconds before one has been timed (retrieval on a busy CPU)."""
RECHECK_S = 0.5
RESERVE_SHARE = 0.75
"""At most this share of a request's time is kept for its fallback."""


class Overloaded(Exception):
    """Every slot is busy and the queue is full; try again after `retry_after_s`."""

    def __init__(self, retry_after_s: int, busy: int) -> None:
        super().__init__(f"the service is at capacity ({busy} requests in progress or "
                         f"queued); retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class _Overdue(Exception):
    """A queued job whose deadline passed before it started."""


class Admission:
    """The bounded pool that every recommendation, chat turn and feedback goes through."""

    def __init__(self, *, max_in_flight: int = 4, queue_depth: int = 32,
                 retry_after_s: int = 1, fallback_workers: int = 4) -> None:
        if max_in_flight < 1 or queue_depth < 0 or retry_after_s < 1 or fallback_workers < 1:
            raise ConfigError("need max_in_flight >= 1, queue_depth >= 0, retry_after_s >= 1 "
                              f"and fallback_workers >= 1; got {max_in_flight}, {queue_depth}, "
                              f"{retry_after_s} and {fallback_workers}")
        self.max_in_flight = max_in_flight
        self.queue_depth = queue_depth
        self.retry_after_s = retry_after_s
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="recagent-serve")
        self._fallbacks = ThreadPoolExecutor(fallback_workers,
                                             thread_name_prefix="recagent-fallback")
        self._lock = threading.Lock()
        self.queued = 0
        """Jobs waiting for a slot."""
        self.running = 0
        """Jobs running, including ones whose caller already answered with the fallback."""
        self.falling_back = 0
        self.rejected = 0
        self.early = 0
        """Requests answered by the fallback at once: no slot would be free in time."""
        self.fallback_workers = fallback_workers
        self.job_s: float | None = None
        """Running average of the seconds a job takes once started."""
        self.fallback_s: float | None = None

    @property
    def busy(self) -> int:
        with self._lock:
            return self.queued + self.running + self.falling_back

    @property
    def capacity(self) -> int:
        return self.max_in_flight + self.queue_depth

    async def run(self, job: Callable[[], T], fallback: Callable[[], T] | None,
                  deadline: float) -> tuple[T, bool]:
        """`job`'s result if it ends before `deadline` (time.monotonic()), else
        `fallback`'s; the flag says whether the fallback answered. Without a fallback
        (nothing cheaper to answer with) the job's result, however long it takes. Raises
        Overloaded when the pool and its queue are full, and whatever `job` or `fallback`
        raise."""
        now = time.monotonic()
        with self._lock:
            busy = self.queued + self.running + self.falling_back
            if busy >= self.capacity:
                self.rejected += 1
                raise Overloaded(self.retry_after_s, busy)
            if fallback is None:
                self.queued += 1
        if fallback is None:
            return await asyncio.wrap_future(self._pool.submit(self._start, job, math.inf)), \
                False
        with self._lock:
            reserve = min(self._reserve(), (deadline - now) * RESERVE_SHARE)
            wait = self._expected_wait()
            hopeless = wait > 0 and self.job_s is not None \
                and now + wait + self.job_s + reserve > deadline
            if hopeless:
                self.early += 1
            else:
                self.queued += 1
        if hopeless:
            return await self.run_fallback(fallback), True
        future = self._pool.submit(self._start, job, deadline)
        waiting = asyncio.wrap_future(future)
        try:
            while True:  # the reserve grows as requests queue: look again now and then
                with self._lock:
                    reserve = min(self._reserve(), (deadline - now) * RESERVE_SHARE)
                left = deadline - reserve - time.monotonic()
                if left <= 0:
                    break
                try:
                    return await asyncio.wait_for(asyncio.shield(waiting),
                                                  timeout=min(left, RECHECK_S)), False
                except TimeoutError:
                    continue
        except _Overdue:
            pass
        except BaseException:
            self._forget(future)
            raise
        self._forget(future)
        return await self.run_fallback(fallback), True

    def _expected_wait(self) -> float:
        """Seconds until a slot frees for one more job (0: one is free); under the lock."""
        ahead = self.queued + self.running - self.max_in_flight + 1
        if ahead <= 0 or self.job_s is None:
            return 0.0
        return -(-ahead // self.max_in_flight) * self.job_s

    def _reserve(self) -> float:
        """Seconds to keep for the fallback: its own time, and the time of the fallbacks
        running and of every request waiting, should they all need one; under the lock."""
        each = FALLBACK_PRIOR_S if self.fallback_s is None else self.fallback_s
        return each * (1 + (self.falling_back + self.queued) / self.fallback_workers)

    async def run_fallback(self, fallback: Callable[[], T]) -> T:
        with self._lock:
            self.falling_back += 1
        try:
            return await asyncio.wrap_future(self._fallbacks.submit(self._timed, fallback))
        finally:
            with self._lock:
                self.falling_back -= 1

    def _timed(self, fallback: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return fallback()
        finally:
            with self._lock:
                self.fallback_s = _average(self.fallback_s, time.monotonic() - began)

    def close(self) -> None:
        """Stop taking jobs; running ones finish (their threads are not killed)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._fallbacks.shutdown(wait=False, cancel_futures=True)

    def _start(self, job: Callable[[], T], deadline: float) -> T:
        with self._lock:
            self.queued -= 1
            self.running += 1
        if time.monotonic() >= deadline:
            with self._lock:
                self.running -= 1
            raise _Overdue
        began = time.monotonic()
        try:
            return job()
        finally:
            with self._lock:
                self.running -= 1
                self.job_s = _average(self.job_s, time.monotonic() - began)

    def _forget(self, future: Future[T]) -> None:
        """A job nobody waits for any more: dropped if it has not started."""
        if future.cancel():
            with self._lock:
                self.queued -= 1
        else:
            future.add_done_callback(_swallow)


def _swallow(future: Future[Any]) -> None:
    """An abandoned job's own failure concerns nobody (its caller has answered)."""
    with contextlib.suppress(CancelledError):
        future.exception()


def _average(mean: float | None, value: float) -> float:
    return value if mean is None else (1 - SMOOTHING) * mean + SMOOTHING * value
