"""The agent row beside the rules chat in the conversation protocol, on the hand-made
dialogue set: its plans are kept per message, summarised, compared pairwise with the
rules, and recomputed. The planner's server is scripted (the client boundary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultserver import FaultServer, Reply

from eval.agent_stats import message_record, paired, summarise_messages
from eval.conversation_recompute import main as recompute
from eval.evaluate import evaluate_config
from recagent.agent.types import AgentTrace
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.types import ChatTurn, PreferenceProfile
from recagent.wiring import Settings
from tests.eval.test_conversation import FILMS, _turn

PLAN = {"steps": [{"tool": "filter", "args": {"include": [
    {"attribute": "genres", "values": ["Horror"]}]}}, {"tool": "recommend", "args": {}}]}


def completion(text: str) -> Reply:
    return Reply(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 5,
                                 "total_tokens": 10}})


def test_agent_row_is_paired_with_the_rules_and_recomputed(
        tmp_path: Path, artifact_store: ArtifactStore) -> None:
    (tmp_path / "films.jsonl").write_text("".join(json.dumps(f) + "\n" for f in FILMS))
    liked = [("Night Terror (1980)", "Deep Fear (1985)"), ("Deep Fear (1985)", "The Crypt (1990)"),
             ("Big Laughs (1995)", "Silly Summer (1998)"), ("Star Voyage (1977)",
                                                            "Robot Dawn (1984)")]
    (tmp_path / "train.jsonl").write_text("\n".join(  # 12 histories: enough to fit on
        _turn(f"t{n}", 1, [f"I love {a}"], [b]) for n, (a, b) in enumerate(liked * 3)) + "\n")
    (tmp_path / "test.jsonl").write_text("\n".join([
        _turn("x", 1, ["I want a horror movie like Night Terror (1980)"], ["Deep Fear (1985)"]),
        _turn("x", 3, ["I want a horror movie like Night Terror (1980)", "Try Deep Fear",
                       "Seen it. More horror?"], ["The Crypt (1990)"]),
        _turn("y", 1, ["Something funny, like Big Laughs (1995)"], ["c2"]),
    ]) + "\n")
    with FaultServer(completion(json.dumps(PLAN))) as server:
        config = tmp_path / "agent.toml"
        config.write_text(f"""name = "tiny_agent"
fit_users = 10
[dataset]
kind = "dialogues"
catalog = "{tmp_path / 'films.jsonl'}"
train = "{tmp_path / 'train.jsonl'}"
test = "{tmp_path / 'test.jsonl'}"
[protocol]
kind = "conversation"
rows = ["chat", "agent"]
llm_dialogues = "all"
judgement = "a test rule"
[llm]
base_url = "{server.url}"
model = "m"
""")
        home = tmp_path / "home"
        home.mkdir()
        (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
        out = tmp_path / "report"
        evaluate_config(config, out=out, settings=Settings(home=home), progress=False)
        asked = len(server.requests)
    summary = json.loads((out / "metrics.json").read_text())
    agent = summary["rows"]["agent"]
    assert asked == agent["agent"]["messages"] == 3  # one plan per seeker message
    assert agent["agent"]["valid_plans"] == 3 and agent["agent"]["fallbacks"] == {}
    assert agent["out_of_catalog"] == 0 and agent["violations"] == 0
    vs = agent["vs_chat"]["all_recall@10"]
    assert vs["n"] == summary["data"]["pairs"] == 3
    assert recompute(out) == 0


def test_paired_statistics_by_hand() -> None:
    same = paired([1, 0, 1], [1, 0, 1])
    assert same["diff"] == 0 and same["p"] == 1.0 and not same["better"]
    up = paired([1, 1, 1, 1, 0, 1], [0, 0, 0, 1, 0, 0])
    assert up["diff"] == pytest.approx(4 / 6) and up["p"] < 0.05 and up["better"]
    assert up["ci95"][0] > 0


def test_message_summary_counts_validity_repairs_and_fallbacks() -> None:
    rows = [{"seconds": 1.0, "valid": True, "repairs": [], "degraded": None},
            {"seconds": 2.0, "valid": False, "repairs": ["added_recommend", "ungrounded"],
             "degraded": None},
            {"seconds": 3.0, "valid": False, "repairs": ["ungrounded"], "degraded": None},
            {"seconds": 9.0, "valid": False, "repairs": [], "degraded": "plan"}]
    got = summarise_messages(rows)
    assert got["plans"] == 3 and got["valid_plans"] == 1 and got["repaired_plans"] == 1
    assert got["repairs"] == {"added_recommend": 1, "ungrounded": 2}
    assert got["fallbacks"] == {"plan": 1} and got["seconds_p50"] == 2.5


def test_a_fallen_back_message_keeps_its_step_and_reason() -> None:
    trace = AgentTrace(degraded=True, degraded_step="plan",
                       degraded_reason="LLMOutputError: not JSON")
    turn = ChatTurn(message="hi", reply="", items=[], profile=PreferenceProfile(),
                    degraded=True, agent=trace)
    record = message_record(turn, 1.5)
    assert record["degraded"] == "plan" and record["reason"] == "LLMOutputError: not JSON"
    assert message_record(turn.model_copy(update={"agent": AgentTrace()}), 1.0)["reason"] is None
