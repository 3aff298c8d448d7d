"""The one structured-call policy: validate, re-ask once with the error, or fail with every
raw answer; transport errors pass straight through."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationInfo, field_validator

from recagent.errors import ResponseError, TransportError
from recagent.llm.prompts import PromptLibrary, RenderedPrompt
from recagent.llm.structured import (
    RAW_SHOWN_CHARS,
    StructuredResponseError,
    describe_error,
    structured_call,
)
from recagent.types import Usage
from tests.fakes import ScriptedClient

PROMPT = RenderedPrompt("t", "abcdef012345", [{"role": "system", "content": "be brief"},
                                               {"role": "user", "content": "pick one"}])
SCHEMA = {"type": "object", "properties": {"pick": {"type": "string"}}}
EXAMPLE = '{"pick": "<id>"}'


class Pick(BaseModel):
    pick: str

    @field_validator("pick")
    @classmethod
    def _allowed(cls, value: str, info: ValidationInfo) -> str:
        allowed = (info.context or {}).get("allowed")
        if allowed is not None and value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value


def call(client: ScriptedClient, **kw: Any) -> tuple[Pick, Any]:
    return structured_call(client, PromptLibrary(), PROMPT, Pick, schema=SCHEMA,
                           example=EXAMPLE, max_tokens=20, **kw)


def test_a_valid_first_answer_is_one_attempt() -> None:
    client = ScriptedClient('{"pick": "a"}')
    value, inv = call(client, temperature=0.3, seed=7)
    assert value == Pick(pick="a")
    assert inv.attempts == 1 and inv.raw == '{"pick": "a"}' and inv.model == "scripted"
    assert inv.template == "t" and inv.template_hash == "abcdef012345"
    assert inv.messages == PROMPT.messages and inv.usage.prompt_tokens == 100
    assert inv.latency_s == pytest.approx(0.01)
    request = client.requests[0]
    assert request["schema"] == SCHEMA and request["max_tokens"] == 20
    assert request["temperature"] == 0.3 and request["seed"] == 7


def test_an_invalid_answer_is_reasked_once_with_its_error_and_raw_text() -> None:
    client = ScriptedClient('{"choice": "a"}', '{"pick": "b"}')
    value, inv = call(client)
    assert value.pick == "b" and inv.attempts == 2 and inv.raw == '{"pick": "b"}'
    assert inv.usage == Usage(prompt_tokens=200, completion_tokens=40)
    reask = client.requests[1]["messages"]
    assert reask[:2] == PROMPT.messages
    assert reask[2] == {"role": "assistant", "content": '{"choice": "a"}'}
    assert reask[3]["role"] == "user" and "pick: Field required" in reask[3]["content"]
    assert EXAMPLE in reask[3]["content"] and inv.messages == reask


def test_the_shown_answer_is_truncated() -> None:
    client = ScriptedClient("x" * (RAW_SHOWN_CHARS + 500), '{"pick": "b"}')
    call(client)
    assert client.requests[1]["messages"][2]["content"] == "x" * RAW_SHOWN_CHARS


def test_two_invalid_answers_raise_with_both_raws_and_summed_usage() -> None:
    client = ScriptedClient("nope", '{"pick": 3}')
    with pytest.raises(ResponseError) as info:
        call(client, failure="unusable pick")
    err = info.value
    assert isinstance(err, StructuredResponseError)
    assert err.raws == ["nope", '{"pick": 3}'] and err.raw == '{"pick": 3}'
    assert err.attempts == 2 and err.usage == Usage(prompt_tokens=200, completion_tokens=40)
    assert str(err).startswith("unusable pick: pick: ") and "after 2 attempt(s)" in str(err)
    assert err.invocation.attempts == 2 and err.invocation.raw == '{"pick": 3}'
    assert "pick" in err.problem and len(client.requests) == 2


def test_transport_errors_propagate_without_reask() -> None:
    client = ScriptedClient(TransportError("down"), '{"pick": "a"}')
    with pytest.raises(TransportError, match="down"):
        call(client)
    assert len(client.requests) == 1
    client = ScriptedClient("nope", TransportError("down again"))
    with pytest.raises(TransportError, match="down again"):  # not wrapped in a ResponseError
        call(client)


def test_the_validation_context_is_honoured() -> None:
    client = ScriptedClient('{"pick": "z"}', '{"pick": "b"}')
    value, inv = call(client, context={"allowed": ["a", "b"]})
    assert value.pick == "b" and inv.attempts == 2
    assert "'z' is not one of a, b" in client.requests[1]["messages"][-1]["content"]
    with pytest.raises(ResponseError):
        call(ScriptedClient('{"pick": "z"}', '{"pick": "y"}'), context={"allowed": ["a"]})


def test_an_extra_check_is_reasked_like_a_validation_error() -> None:
    def not_empty(answer: Pick) -> None:
        if not answer.pick.strip():
            raise ValueError("empty pick")

    client = ScriptedClient('{"pick": " "}', '{"pick": "a"}')
    value, inv = call(client, check=not_empty)
    assert value.pick == "a" and inv.attempts == 2
    assert "empty pick" in client.requests[1]["messages"][-1]["content"]


def test_errors_are_described_in_one_line() -> None:
    with pytest.raises(ValueError) as info:
        Pick.model_validate_json('{"other": 1}')
    assert describe_error(info.value) == "pick: Field required"
    assert describe_error(ValueError("plain")) == "plain"
