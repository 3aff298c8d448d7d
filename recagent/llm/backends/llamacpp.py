"""The embedded local LLM: llama.cpp's OpenAI-compatible server, run inside this process.

xllamacpp runs llama.cpp's own HTTP server on background C++ threads, so there is no
binary to install or child process to supervise, and every client (the `openai` SDK,
curl, another process) talks plain HTTP to it.

Shutdown: xllamacpp's `Server` has no stop method; dropping its last reference runs
the C++ destructor, which ends the task loop, stops the HTTP listener and joins its
threads (the port is free again within ~0.1 s). That destructor hangs if it runs
before the task loop has started (the terminate signal is lost), so `start()` waits
for one task to pass through the loop before it returns.

Embedding mode (`pooling` given): the same server answers /v1/embeddings with the model's
hidden states pooled per input (llama.cpp's `embedding` and `pooling_type`), L2-normalised;
chat and completion requests are then refused. Item-side vectors (retrieval/item_vectors.py)
come from it: one pass over the catalog, cached.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO, get_args
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported where a server starts: a vLLM-only environment lacks it
    import xllamacpp

from recagent.errors import ConfigError, LLMError, ModelArtifactError, TransportError

GGUF_MAGIC = b"GGUF"
_PROMPT_CACHE_MIB = 512
"""llama.cpp keeps old prompts' KV in RAM for reuse, 8 GiB by default: too much to share."""
Pooling = Literal["mean", "last", "cls"]
"""How embedding mode turns one input's token states into one vector: their mean, the
last token's state (what a causal model has read everything by), or the first token's."""
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)


class LocalLLMServer:
    """One GGUF model served over HTTP on loopback; use it as a context manager.

    `n_ctx` is the context of one request: the KV cache holds `n_ctx * n_parallel`
    tokens so that `n_parallel` requests of full length can run at once.
    `verbosity`: 0 silent, 1 errors (default), 2 warnings, 3 info, 4 debug (stderr).
    `pooling`: serve embeddings pooled this way instead of completions (embedding mode);
    an input must then fit in one batch of `n_ctx` tokens.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        verbosity: int = 1,
        start_timeout_s: float = 60.0,
        pooling: Pooling | None = None,
    ) -> None:
        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if n_ctx < 64 or n_parallel < 1 or (n_threads is not None and n_threads < 1):
            raise ConfigError(
                f"need n_ctx >= 64, n_parallel >= 1, n_threads >= 1 or None; "
                f"got n_ctx={n_ctx}, n_parallel={n_parallel}, n_threads={n_threads}"
            )
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_parallel = n_parallel
        self.n_threads = n_threads
        self.requested_port = port
        self.host = host
        self.verbosity = verbosity
        self.start_timeout_s = start_timeout_s
        self.pooling = pooling
        self._server: xllamacpp.Server | None = None
        self._address = ""
        self.startup_s = 0.0
        """Seconds from start() to the first healthy /health answer."""

    # lifecycle

    def start(self) -> LocalLLMServer:
        """Load the model and serve it; returns once /health answers ok."""
        if self._server is not None:
            return self
        check_gguf(self.model_path)
        if self.requested_port:
            _check_port_free(self.host, self.requested_port)
        import xllamacpp

        began = time.perf_counter()
        try:
            server = xllamacpp.Server(self._params())
        except RuntimeError as e:
            raise ConfigError(
                f"the local LLM server did not start for {self.model_path} on "
                f"{self.host}:{self.requested_port or 'any port'} ({e}); "
                "run with verbosity=3 to see llama.cpp's log"
            ) from e
        self._server = server
        try:
            # One task through the loop: proves it runs, so the destructor can stop it.
            server.handle_metrics()
            self._address = server.listening_address
            self._wait_healthy(began + self.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - began
        return self

    def stop(self) -> None:
        """Stop serving and free the port, the threads and the model's memory."""
        server, self._server = self._server, None
        if server is not None:
            del server  # the last reference: the C++ destructor joins the server threads

    def __enter__(self) -> LocalLLMServer:
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
        return self._server is not None

    @property
    def address(self) -> str:
        """`http://host:port`, where /health, /metrics and /v1/... live."""
        if self._server is None:
            raise LLMError("the local LLM server is not running; call start() or use `with`")
        return self._address

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url."""
        return self.address + "/v1"

    @property
    def model(self) -> str:
        """The model name to send (the server answers to any, but reports this one)."""
        return self.model_name

    @property
    def port(self) -> int:
        port = urlsplit(self.address).port
        assert port is not None
        return port

    def health(self, timeout_s: float = 2.0) -> bool:
        """True when /health answers 200 {"status": "ok"}."""
        split = urlsplit(self.address)
        conn = http.client.HTTPConnection(_connectable(split.hostname), split.port,
                                          timeout=timeout_s)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = response.read()
        except OSError:
            return False
        finally:
            conn.close()
        try:
            return response.status == 200 and json.loads(body).get("status") == "ok"
        except ValueError:
            return False

    # internals

    def _params(self) -> xllamacpp.CommonParams:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.model_name}
        params.n_ctx = self.n_ctx * self.n_parallel
        params.n_parallel = self.n_parallel
        if self.n_threads is not None:
            params.cpuparams.n_threads = self.n_threads
            params.cpuparams_batch.n_threads = self.n_threads
        params.hostnames = [self.host]
        params.port = self.requested_port or 0  # 0: the listener binds a free port itself
        params.verbosity = self.verbosity
        params.endpoint_metrics = True
        params.cache_ram_mib = _PROMPT_CACHE_MIB
        params.ui = False
        if self.pooling is not None:
            params.embedding = True
            params.pooling_type = getattr(xllamacpp.llama_pooling_type,
                                          f"LLAMA_POOLING_TYPE_{self.pooling.upper()}")
            # an input is embedded in one physical batch: let one of full length fit
            params.n_batch = params.n_ubatch = self.n_ctx
        return params

    def _wait_healthy(self, deadline: float) -> None:
        while not self.health():
            if time.perf_counter() > deadline:
                raise TransportError(
                    f"the local LLM server at {self._address} did not report healthy "
                    f"within {self.start_timeout_s:.0f} s"
                )
            time.sleep(0.05)


def check_gguf(path: Path) -> None:
    """Fail early with a clear message: llama.cpp only says 'failed to init server'."""
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as e:
        raise ModelArtifactError(f"cannot read model file {path}: {e.strerror}") from e
    if magic != GGUF_MAGIC:
        raise ModelArtifactError(f"{path} is not a GGUF model file (it does not start with GGUF)")


class ManagedServer(Protocol):
    """What `serve_forever` needs: LocalLLMServer and vllm_server.VLLMServer."""

    startup_s: float

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    @property
    def model(self) -> str: ...

    @property
    def base_url(self) -> str: ...


def serve_forever(server: ManagedServer, *, out: TextIO | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop: the body of `recagent serve-llm`.
    SIGTERM counts as Ctrl-C so that a server in a child process (vLLM) is never orphaned;
    SIGINT is handled even when inherited as ignored (a shell's background job)."""
    stream = out if out is not None else sys.stdout
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)} \
        if main else {}
    try:
        server.start()
        print(
            f"serving {server.model} at {server.base_url} "
            f"(started in {server.startup_s:.1f} s; Ctrl-C to stop)",
            file=stream,
            flush=True,
        )
        while True:  # short naps: a signal caught by a server thread is seen within 0.2 s
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping", file=stream, flush=True)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as llama.cpp's listener
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ConfigError(
                f"cannot serve on {host}:{port}: {e.strerror}; pick another port or leave it "
                "unset to take a free one"
            ) from e


def _connectable(hostname: str | None) -> str:
    """A wildcard listener is reached over loopback."""
    if hostname in (None, "", "0.0.0.0"):
        return "127.0.0.1"
    if hostname == "::":
        return "::1"
    return hostname
