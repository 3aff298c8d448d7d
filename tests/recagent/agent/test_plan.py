"""Plan validation and repair on hand-written bad plans; the schema the server gets."""

from __future__ import annotations

import json

import jsonschema
import pytest

from recagent.agent.plan import EXAMPLE, PlanError, check_plan, parse_plan, plan_schema
from recagent.agent.types import MAX_STEPS, FilterArgs, TitlesArgs


def checked(*steps: dict[str, object]) -> tuple[list[str], list[str]]:
    final, repairs = check_plan(parse_plan(json.dumps({"steps": list(steps)})))
    return [s.tool for s in final], [r.kind for r in repairs]


def test_a_valid_plan_runs_as_written() -> None:
    tools, repairs = checked(
        {"tool": "find_titles", "args": {"titles": ["Alien"]}},
        {"tool": "similar_to", "args": {}},
        {"tool": "recommend", "args": {}},
        {"tool": "explain", "args": {}})
    assert tools == ["find_titles", "similar_to", "recommend", "explain"]
    assert repairs == []


def test_a_missing_recommend_is_added_at_the_end() -> None:
    tools, repairs = checked({"tool": "filter", "args": {"exclude": [
        {"attribute": "genre", "values": ["horror"]}]}})
    assert tools == ["filter", "recommend"]
    assert repairs == ["added_recommend"]


def test_an_unknown_tool_is_dropped_and_counted() -> None:
    tools, repairs = checked({"tool": "web_search", "args": {"q": "alien"}},
                             {"tool": "recommend", "args": {}})
    assert tools == ["recommend"]
    assert repairs == ["unknown_tool"]


@pytest.mark.parametrize("args", [
    {"titles": "Alien"},                       # not a list
    {"titles": ["x" * 81]},                    # too long
    {"titles": ["Alien"], "limit": 3},         # an argument the tool has no
])
def test_bad_arguments_drop_the_step(args: dict[str, object]) -> None:
    tools, repairs = checked({"tool": "find_titles", "args": args},
                             {"tool": "recommend", "args": {}})
    assert tools == ["recommend"]
    assert repairs == ["bad_args"]


def test_a_filter_without_values_is_bad_arguments() -> None:
    tools, repairs = checked({"tool": "filter", "args": {"include": [
        {"attribute": "star", "values": []}]}}, {"tool": "recommend", "args": {}})
    assert (tools, repairs) == (["recommend"], ["bad_args"])


def test_an_early_recommend_moves_to_the_end_and_duplicates_go() -> None:
    tools, repairs = checked({"tool": "recommend", "args": {}},
                             {"tool": "find_titles", "args": {"titles": ["Heat"]}},
                             {"tool": "recommend", "args": {}},
                             {"tool": "similar_to", "args": {}})
    assert tools == ["find_titles", "similar_to", "recommend"]
    assert repairs == ["moved_recommend"]


def test_a_long_plan_is_cut_and_still_ends_with_recommend() -> None:
    many = [{"tool": "find_titles", "args": {"titles": [f"T{n}"]}} for n in range(9)]
    tools, repairs = checked(*many)
    assert len(tools) == MAX_STEPS and tools[-1] == "recommend"
    assert repairs == ["too_many_steps", "added_recommend"]


@pytest.mark.parametrize("raw", ["", "recommend please", '{"plan": []}', "[1, 2]",
                                 '{"steps": [{"args": {}}]}'])
def test_an_answer_that_is_no_plan_raises(raw: str) -> None:
    with pytest.raises(PlanError):
        parse_plan(raw)


def test_the_schema_accepts_what_validation_accepts_and_pins_attributes() -> None:
    schema = plan_schema(["genre", "star"])
    jsonschema.validate(json.loads(EXAMPLE), schema)
    good = {"steps": [{"tool": "filter", "args": {
        "include": [{"attribute": "star", "values": ["Tom Hanks"]}], "year_min": 1990}},
        {"tool": "recommend", "args": {}}]}
    jsonschema.validate(good, schema)
    FilterArgs.model_validate(good["steps"][0]["args"])
    bad_attribute = {"steps": [{"tool": "filter", "args": {
        "include": [{"attribute": "title", "values": ["Alien"]}]}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_attribute, schema)
    too_long = {"steps": [{"tool": "recommend", "args": {}}] * (MAX_STEPS + 1)}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_long, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"steps": [{"tool": "web_search", "args": {}}]}, schema)
    no_recommend = {"steps": [{"tool": "similar_to", "args": {"titles": ["Alien"]}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(no_recommend, schema)
    early_recommend = {"steps": [{"tool": "recommend", "args": {}},
                                 {"tool": "similar_to", "args": {}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(early_recommend, schema)
    jsonschema.validate({"steps": [{"tool": "recommend", "args": {}},
                                   {"tool": "explain", "args": {}}]}, schema)
    assert "$ref" not in json.dumps(schema)
    TitlesArgs.model_validate({"titles": ["Alien"]})
