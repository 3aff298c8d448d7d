"""The plan: its JSON schema for the server, and validation with repair.

The model's answer is parsed leniently (RawPlan) and each step validated on its own, so a
step naming an unknown tool or carrying arguments outside its schema is dropped and
counted, not the whole plan lost. A plan always ends with `recommend` (optionally followed
by `explain`): a missing one is added, an early one moved to the end. `valid` says whether
the plan as written needed no repair at all.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from recagent.agent.types import (
    ARGS,
    MAX_STEPS,
    TOOLS,
    NoArgs,
    PlanRepair,
    RawPlan,
    Step,
)
from recagent.errors import ResponseError
from recagent.llm.client import JsonSchema
from recagent.llm.structured import describe_error

EXAMPLE = ('{"steps": [{"tool": "find_titles", "args": {"titles": ["Alien"]}}, '
           '{"tool": "similar_to", "args": {}}, {"tool": "recommend", "args": {}}]}')
"""The answer's shape, for the prompt."""


class PlanError(ResponseError):
    """The model's answer is not a plan at all (not JSON, or no list of steps)."""


def plan_schema(attributes: Sequence[str]) -> JsonSchema:
    """The JSON schema the server constrains the answer to: at most MAX_STEPS steps, each
    one of the tools with that tool's arguments (attribute names from the catalog), ending
    with `recommend` or `recommend, explain`. The ending is written as one fixed-length
    tuple per plan length, since a JSON schema has no "last item" rule; so the server
    cannot end a plan early, and `check_plan`'s repairs stay for servers without schemas."""
    variants: dict[str, JsonSchema] = {}
    for tool in TOOLS:
        args = _inline(ARGS[tool].model_json_schema())
        if tool == "filter":
            for side in ("include", "exclude"):
                condition = args["properties"][side]["items"]
                condition["properties"]["attribute"] = {"type": "string",
                                                        "enum": list(attributes) or ["genres"]}
        variants[tool] = {"type": "object",
                          "properties": {"tool": {"type": "string", "enum": [tool]},
                                         "args": args},
                          "required": ["tool", "args"], "additionalProperties": False}
    body = {"anyOf": [v for t, v in variants.items() if t not in ("recommend", "explain")]}
    endings = ([variants["recommend"]], [variants["recommend"], variants["explain"]])
    plans = [{"type": "array", "prefixItems": [body] * (length - len(end)) + end,
              "minItems": length, "maxItems": length}
             for end in endings for length in range(len(end), MAX_STEPS + 1)]
    return {"type": "object", "properties": {"steps": {"anyOf": plans}},
            "required": ["steps"], "additionalProperties": False}


def parse_plan(raw: str) -> RawPlan:
    """The answer as a list of steps; PlanError when it is not one."""
    try:
        return RawPlan.model_validate_json(raw)
    except ValidationError as e:
        raise PlanError(f"not a plan: {describe_error(e)}", raw, 1) from None


def check_plan(plan: RawPlan) -> tuple[list[Step], list[PlanRepair]]:
    """The steps to run and every repair made; no repairs means the plan was valid."""
    repairs: list[PlanRepair] = []
    steps: list[tuple[int, Step]] = []
    for n, raw in enumerate(plan.steps):
        if raw.tool not in TOOLS:
            repairs.append(PlanRepair(kind="unknown_tool", step=n,
                                      detail=f"dropped step {n}: no tool {raw.tool[:40]!r}"))
            continue
        tool = raw.tool
        try:
            args = ARGS[tool].model_validate(raw.args)
        except ValidationError as e:
            repairs.append(PlanRepair(kind="bad_args", step=n,
                                      detail=f"dropped step {n} ({tool}): {describe_error(e)}"))
            continue
        steps.append((n, Step(tool=tool, args=args)))  # type: ignore[arg-type]
    if len(plan.steps) > MAX_STEPS:
        repairs.append(PlanRepair(kind="too_many_steps", step=MAX_STEPS,
                                  detail=f"{len(plan.steps)} steps; only the first "
                                         f"{MAX_STEPS} are run"))
        steps = [(n, s) for n, s in steps if n < MAX_STEPS]
    recommends = [n for n, s in steps if s.tool == "recommend"]
    body = [(n, s) for n, s in steps if s.tool not in ("recommend", "explain")]
    explains = [(n, s) for n, s in steps if s.tool == "explain"][:1]
    if not recommends:
        repairs.append(PlanRepair(kind="added_recommend",
                                  detail="the plan had no recommend step; one was added"))
        if len(body) + 1 + len(explains) > MAX_STEPS:
            body = body[:MAX_STEPS - 1 - len(explains)]
    else:
        last = recommends[-1]
        late = [n for n, s in body if n > last]
        if late or len(recommends) > 1 or any(n < last for n, _ in explains):
            repairs.append(PlanRepair(kind="moved_recommend", step=last,
                                      detail="recommend (and explain) moved to the end"))
    final = [s for _, s in body] + [Step(tool="recommend", args=NoArgs())]
    final += [s for _, s in explains]
    return final, repairs


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local $refs replaced by their definitions (some servers'
    grammar compilers do not follow $ref), titles dropped."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]))
            return {k: walk(v) for k, v in node.items()
                    if k not in ("$defs", "title", "description", "default")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]
