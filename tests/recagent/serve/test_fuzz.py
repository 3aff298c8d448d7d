"""The OpenAPI schema fuzzed (schemathesis, a bounded number of examples per operation):
no input, valid or not, gets a 5xx, and every 2xx answer matches the published schema."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from recagent.serve.app import create_app
from retrieval.store import CatalogStore
from tests.recagent.serve.conftest import PickingClient, build_service

pytestmark = pytest.mark.integration

EXAMPLES = 40
"""Per operation and mode (valid, invalid inputs): 17 runs, so 680 requests at most."""


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter[int]]:
    statuses: Counter[int] = Counter()
    yield statuses
    print(f"\nfuzzed: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")


@pytest.fixture(scope="module")
def api(mini_store: CatalogStore, tmp_path_factory: pytest.TempPathFactory) -> Any:
    service = build_service(mini_store, PickingClient(), tmp_path_factory.mktemp("fuzz")
                            / "db.sqlite", max_body_bytes=16 * 1024)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service))


@pytest.fixture(scope="module")
def session_id(api: Any) -> str:
    """A real session, so that valid inputs reach the session operations' work."""
    with TestClient(api.app) as client:
        return str(client.post("/v1/sessions", json={}).json()["session_id"])


NO_INPUT = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")]
"""Nothing to send wrong to these: valid requests only."""
WITH_INPUT = [("GET", "/v1/items"), ("POST", "/v1/recommend"), ("POST", "/v1/sessions"),
              ("GET", "/v1/sessions/{session_id}"),
              ("POST", "/v1/sessions/{session_id}/messages"),
              ("POST", "/v1/sessions/{session_id}/feedback"),
              ("POST", "/v1/sessions/{session_id}/profile/remove")]
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in NO_INPUT] + [
    (m, p, mode) for m, p in WITH_INPUT for mode in GenerationMode]


@pytest.mark.parametrize("method, path, mode", CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_no_input_gets_a_server_error(api: Any, session_id: str, tally: Counter[int],
                                      method: str, path: str, mode: GenerationMode) -> None:
    """Valid (positive) and invalid (negative) inputs alike. schemathesis's own pytest
    plugin cannot take a fixture's app under pytest 9, so hypothesis drives its strategies
    here."""

    real = "{session_id}" in path and mode == GenerationMode.POSITIVE
    strategy = api[path][method].as_strategy(
        generation_mode=mode, path_parameters={"session_id": session_id} if real else None)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        response = case.call()
        tally[response.status_code] += 1
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code < 300:
            case.validate_response(response, checks=[response_schema_conformance])

    fuzz()


def test_the_schema_names_every_route(api: Any, tmp_path: Path) -> None:
    paths = set(api.raw_schema["paths"])
    assert {"/healthz", "/readyz", "/metrics", "/v1/items", "/v1/recommend", "/v1/sessions",
            "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/messages",
            "/v1/sessions/{session_id}/feedback",
            "/v1/sessions/{session_id}/profile/remove"} <= paths
