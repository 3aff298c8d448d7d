"""OpenAIClient against a tiny real HTTP server that plays back status codes."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recagent.errors import ConfigError, LLMError, TransportError
from recagent.llm.client import OpenAIClient

OK_BODY = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": '{"ranking": []}'},
                 "logprobs": {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                                           "top_logprobs": [
                                               {"token": "A", "logprob": -0.1, "bytes": None},
                                               {"token": "B", "logprob": -2.5, "bytes": None}]}]}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


class Script:
    def __init__(self) -> None:
        self.responses: list[tuple[int, dict]] = []
        self.requests: list[dict] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(body)
            status, payload = script.responses.pop(0) if script.responses else (200, OK_BODY)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    httpd.shutdown()


def client(url: str) -> OpenAIClient:
    return OpenAIClient(base_url=url, model="m", retries=2, backoff_s=0.01)


def error(message: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error"}}


def test_reply_usage_and_top_logprobs(server) -> None:
    url, script = server
    out = client(url).complete([{"role": "user", "content": "hi"}], top_logprobs=2)
    assert out.text == '{"ranking": []}'
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (12, 3)
    assert out.top_logprobs == [{"A": -0.1, "B": -2.5}]
    assert script.requests[0]["top_logprobs"] == 2 and script.requests[0]["logprobs"] is True


def test_transient_5xx_and_429_are_retried(server) -> None:
    url, script = server
    script.responses = [(503, error("busy")), (429, error("slow down"))]
    out = client(url).complete([{"role": "user", "content": "hi"}])
    assert out.text and len(script.requests) == 3


def test_persistent_5xx_becomes_transport_error_after_all_tries(server) -> None:
    url, script = server
    script.responses = [(500, error("boom"))] * 3
    with pytest.raises(TransportError, match="3 tries"):
        client(url).complete([{"role": "user", "content": "hi"}])
    assert len(script.requests) == 3


def test_client_errors_are_not_retried(server) -> None:
    url, script = server
    script.responses = [(401, error("bad key"))]
    with pytest.raises(ConfigError, match="API key"):
        client(url).complete([{"role": "user", "content": "hi"}])
    script.responses = [(400, error("messages must not be empty"))]
    with pytest.raises(LLMError):
        client(url).complete([{"role": "user", "content": "hi"}])
    assert len(script.requests) == 2


def test_json_schema_rejection_falls_back_to_json_object_once(server) -> None:
    url, script = server
    script.responses = [(400, error("response_format type json_schema is not supported"))]
    c = client(url)
    schema = {"type": "object", "properties": {"ranking": {"type": "array"}}}
    c.complete([{"role": "user", "content": "hi"}], schema=schema)
    c.complete([{"role": "user", "content": "again"}], schema=schema)
    formats = [r["response_format"]["type"] for r in script.requests]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert script.requests[0]["response_format"]["json_schema"]["schema"] == schema


def test_unreachable_server_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        client("http://127.0.0.1:9/v1").complete([{"role": "user", "content": "hi"}])
