"""`recommend` says where its time went: start, ranking call, explanation call (prompt and
generation when the server reports them), and the rest."""

from __future__ import annotations

from recagent.cli.commands import timing, timing_line
from recagent.llm.timings import server_timings
from recagent.types import Invocation, Trace, Usage


def _call(usage: Usage, latency_s: float) -> Invocation:
    return Invocation(template="t", template_hash="h", model="m", messages=[], raw="",
                      attempts=1, usage=usage, latency_s=latency_s)


def test_the_parts_add_up_to_the_request() -> None:
    usage = Usage(prompt_tokens=400, completion_tokens=50, **server_timings(
        {"timings": {"prompt_ms": 800.0, "predicted_ms": 1200.0}}))
    trace = Trace(latency_s=5.0, llm_latency_s=2.0, explain_call=_call(usage, 2.5))
    t = timing(3.0, trace)
    assert t["start_s"] == 3.0 and t["ranking_s"] == 2.0 and t["explanation_s"] == 2.5
    assert t["retrieval_and_rest_s"] == 0.5
    assert (t["explanation_prompt_s"], t["explanation_generation_s"]) == (0.8, 1.2)
    line = timing_line(t)
    assert "prompt 0.80 s for 400 tokens, generation 1.20 s for 50" in line


def test_a_server_that_says_nothing_gives_no_split() -> None:
    assert server_timings({}) == {"prompt_s": None, "generation_s": None}
    assert server_timings({"timings": {"prompt_ms": "x"}})["prompt_s"] is None
    t = timing(1.0, Trace(latency_s=0.01))
    assert t["explanation_s"] == 0.0 and "prompt" not in timing_line(t)
    assert Usage(prompt_s=1.0) + Usage() == Usage(prompt_s=1.0)
