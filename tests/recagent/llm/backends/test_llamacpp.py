"""The embedded llama.cpp server, for real: SmolLM2-135M through the real `openai` SDK.

What is checked holds for any model: the server answers, the JSON schema constrains
the output (an enum value always comes out inside the enum), logprobs come back, and
stopping frees the port. No wording, no timings.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from recagent.errors import ConfigError, LLMError, ModelArtifactError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model

pytestmark = pytest.mark.integration

GENRES = ["comedy", "drama", "horror", "western"]


@pytest.fixture(scope="module")
def smollm2(artifact_store: ArtifactStore) -> tuple[str, Path]:
    return resolve_model("smollm2-135m", artifact_store)


@pytest.fixture(scope="module")
def server(smollm2: tuple[str, Path]) -> Iterator[LocalLLMServer]:
    name, path = smollm2
    with LocalLLMServer(path, model_name=name, n_ctx=1024, n_parallel=2) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LocalLLMServer) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_health_and_addresses(server: LocalLLMServer) -> None:
    assert server.running and server.health()
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model == "smollm2-135m"
    assert server.startup_s > 0


def test_models_endpoint_reports_the_given_name(client: OpenAI, server: LocalLLMServer) -> None:
    assert [m.id for m in client.models.list().data] == [server.model]


def test_chat_completion_returns_text_and_usage(client: OpenAI, server: LocalLLMServer) -> None:
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Name one famous movie."}],
        max_tokens=16,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 16


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_enum_constrains_the_answer(
    client: OpenAI, server: LocalLLMServer, seed: int
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "genre": {"type": "string", "enum": GENRES},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["genre", "stars"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Which genre is the movie Alien? Reply in JSON."}],
        max_tokens=64,
        temperature=1.2,  # a tiny model at high temperature: only the grammar keeps it valid
        seed=seed,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "genre", "schema": schema, "strict": True},
        },
    )
    answer = json.loads(reply.choices[0].message.content or "")
    assert answer["genre"] in GENRES
    assert 1 <= answer["stars"] <= 5
    assert set(answer) == {"genre", "stars"}


def test_top_logprobs_come_back(client: OpenAI, server: LocalLLMServer) -> None:
    reply = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Answer A or B."}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=4,
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    for token in logprobs.content:
        assert len(token.top_logprobs) == 4
        assert all(alt.logprob <= 0 for alt in token.top_logprobs)
        # greedy decoding picks the most likely token, which heads the list
        assert token.token == token.top_logprobs[0].token


def test_stop_frees_the_port(smollm2: tuple[str, Path]) -> None:
    name, path = smollm2
    server = LocalLLMServer(path, model_name=name, n_ctx=512, n_parallel=1).start()
    port = server.port
    assert accepts_connections(port)
    server.stop()
    assert not server.running
    assert not accepts_connections(port)
    with pytest.raises(LLMError):
        _ = server.base_url
    server.stop()  # a second stop is harmless


def test_given_port_in_use_is_a_clear_error(
    smollm2: tuple[str, Path], server: LocalLLMServer
) -> None:
    name, path = smollm2
    with pytest.raises(ConfigError, match=f"127.0.0.1:{server.port}"):
        LocalLLMServer(path, model_name=name, port=server.port).start()


def test_a_file_that_is_not_gguf_is_refused_before_starting(tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelArtifactError, match="not a GGUF"):
        LocalLLMServer(fake, model_name="fake").start()


def test_serve_forever_prints_the_url_and_stops_on_ctrl_c(smollm2: tuple[str, Path]) -> None:
    name, path = smollm2
    code = (
        "import sys; from pathlib import Path\n"
        "from recagent.llm.backends.llamacpp import LocalLLMServer, serve_forever\n"
        "serve_forever(LocalLLMServer(Path(sys.argv[1]), model_name=sys.argv[2], n_ctx=512,"
        " n_parallel=1))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), name],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert url, line
        assert accepts_connections(int(url.group(1)))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopping" in out
    assert not accepts_connections(int(url.group(1)))
