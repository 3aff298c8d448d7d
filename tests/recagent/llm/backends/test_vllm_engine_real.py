"""The in-process vLLM engine (recagent/vllm_engine.py) for real: CPU build, SmolLM2-135M.

recagent's rankers run inside the vLLM environment (.venv-vllm, which has recagent's
runtime needs too, see requirements-vllm.txt) with recagent on PYTHONPATH:
benchmarks/bench_engine.py builds one `vllm.LLM` on the prepared folder and runs
ListwiseRanker and LogprobRanker on hand-made candidates from 4 threads at once through
one VLLMEngineClient, then prints what came back as JSON. One engine start (~40 s), after
tests/test_vllm*.py's servers have stopped. Fails, never skips, without .venv-vllm.

Checked: structured output makes every listwise answer validate on the first try with
candidate labels only, logprobs score every candidate, and requests from different
threads shared a `chat` call. No wording, no timings.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from recagent.llm.backends.vllm_model import PreparedModel
from recagent.rank.listwise import RankingAnswer, labels_for

pytestmark = pytest.mark.vllm



@pytest.fixture(scope="module")
def engine_run(vllm_python: Path, vllm_prepared: PreparedModel,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("engine") / "run.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [str(vllm_python), str(REPO / "benchmarks" / "bench_engine.py"),
         str(vllm_prepared.folder), "--threads", "4", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not out.is_file():
        pytest.fail(f"bench_engine.py exited with {done.returncode}:\n"
                    f"{(done.stdout + done.stderr)[-4000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def jobs(run: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = run["jobs"]
    assert len(found) == 4
    return found


def test_listwise_answers_validate_and_name_only_candidates(engine_run: dict[str, Any]) -> None:
    for job in jobs(engine_run):
        listwise, candidates, k = job["listwise"], job["candidates"], job["k"]
        assert listwise["attempts"] == 1  # valid on the first try, no re-ask
        answer = RankingAnswer.model_validate_json(listwise["raw"])
        assert len(answer.ranking) == k
        assert {e.id for e in answer.ranking} <= set(labels_for(len(candidates)))
        assert listwise["unknown"] == []
        order = listwise["order"]
        assert len(order) == k and set(order) <= set(candidates)
        assert listwise["usage"]["prompt_tokens"] > 0 and listwise["usage"]["completion_tokens"] > 0


def test_logprob_ranker_scores_every_candidate(engine_run: dict[str, Any]) -> None:
    for job in jobs(engine_run):
        logprob, candidates, k = job["logprob"], job["candidates"], job["k"]
        scores = logprob["scores"]
        assert set(scores) == set(candidates)
        assert all(math.isfinite(s) and s <= 0.0 for s in scores.values())
        best_first = sorted(scores, key=lambda i: -scores[i])
        assert logprob["order"] == best_first[:k]


def test_requests_from_several_threads_shared_a_batch(engine_run: dict[str, Any]) -> None:
    sizes: list[int] = engine_run["batch_sizes"]
    assert sum(sizes) == 8  # 4 listwise + 4 logprob requests, none lost or repeated
    assert max(sizes) > 1
