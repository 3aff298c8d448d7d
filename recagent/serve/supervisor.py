"""Keeps the embedded LLM server up while the service runs: restarted if it dies.

A thread asks the server's /health every `interval_s`; after `misses` failed answers in
a row (a busy server still answers /health, so one slow answer is no death) it stops the
server and starts it again on the same port, so the service's LLM client, which knows
only the URL, goes on without noticing more than the requests that failed meanwhile
(those are answered degraded). On exit it waits for the server to finish the requests it
holds before stopping it."""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.request
from types import TracebackType

from recagent.errors import ConfigError
from recagent.llm.backends.llamacpp import LocalLLMServer

log = logging.getLogger(__name__)


class LLMSupervisor:
    """Starts `server` on enter, watches it, stops it on exit. `server` needs a fixed port
    (`embedded_server(settings, port=...)`) so that a restart keeps its URL."""

    def __init__(self, server: LocalLLMServer, *, interval_s: float = 2.0, misses: int = 3,
                 probe_s: float = 2.0, drain_s: float = 600.0) -> None:
        if server.requested_port is None:
            raise ConfigError("a supervised LLM server needs a fixed port to restart on")
        self.server = server
        self.interval_s = interval_s
        self.misses = misses
        self.probe_s = probe_s
        self.drain_s = drain_s
        self.restarts = 0
        self._missed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LLMSupervisor:
        self.server.start()
        self._thread = threading.Thread(target=self._watch, name="recagent-llm-supervisor",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.probe_s + self.interval_s + 5)
        self.drain()
        with self._lock:
            self.server.stop()

    def drain(self) -> bool:
        """Wait (at most `drain_s`) until the server works on no request. Stopping it
        mid-request hangs in llama.cpp's destructor, and requests the service gave up on
        at their deadline may still be generating. True when it went idle."""
        until = time.monotonic() + self.drain_s
        while time.monotonic() < until:
            if self.busy() == 0:
                return True
            time.sleep(0.5)
        log.warning("the embedded LLM server is still busy after %.0f s; stopping it anyway",
                    self.drain_s)
        return False

    def busy(self) -> int:
        """Requests the server is working on or holding (its /metrics); 0 when it cannot
        be asked (not running, or not answering)."""
        if not self.server.running:
            return 0
        try:
            with urllib.request.urlopen(f"{self.server.address}/metrics",
                                        timeout=self.probe_s) as r:
                text = r.read().decode()
        except OSError:
            return 0
        counts = re.findall(r"^llamacpp:requests_(?:processing|deferred) (\d+)", text, re.M)
        return sum(int(n) for n in counts)

    def healthy(self) -> bool:
        """The server answers /health now."""
        with self._lock:
            return self.server.running and self.server.health(self.probe_s)

    def check(self) -> bool:
        """One look; restarts the server after `misses` failed looks in a row. True when
        the server is (again) healthy."""
        if self.healthy():
            self._missed = 0
            return True
        self._missed += 1
        if self._missed < self.misses:
            return False
        log.warning("the embedded LLM server stopped answering; restarting it")
        with self._lock:
            self.server.stop()
            self._start_again()
        self._missed = 0
        self.restarts += 1
        return self.healthy()

    def _start_again(self) -> None:
        for attempt in range(20):  # the old listener frees the port within ~0.1 s
            try:
                self.server.start()
                return
            except ConfigError:
                if attempt == 19:
                    raise
                time.sleep(0.25)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # keep watching: the next look tries again
                log.exception("restarting the embedded LLM server failed")
