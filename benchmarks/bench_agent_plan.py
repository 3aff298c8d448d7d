"""Plan validity and plan-call time of one model on real ReDial seeker messages.

The agent's planner only (one LLM call per message, no tools): the first N distinct seeker
messages of the conversation_redial_agent_* seeded sample (seed 2024, 60 turns), each with
an empty profile, the ReDial catalog's attributes and genres, THREADS llama.cpp threads
(default 1).
    .venv/bin/python benchmarks/bench_agent_plan.py qwen2.5-coder-0.5b 30 out.json [THREADS]
"""
import json
import pathlib
import sys
import time

from eval.conversation import load_items, sample
from eval.dialogues import TitleIndex, load_turns
from recagent.agent.catalog import CatalogIndex
from recagent.agent.planner import Planner
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import LocalLLMServer
from recagent.llm.backends.presets import resolve_model
from recagent.llm.client import OpenAIClient
from recagent.llm.prompts import PromptLibrary
from recagent.types import PreferenceProfile

preset, n, out = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3])
items = load_items(pathlib.Path("../shared/data/redial"))
index = CatalogIndex(items)
turns = load_turns(pathlib.Path("../shared/data/redial/test_data_processed.jsonl"),
                   TitleIndex(items))
msgs = []
for t in sample(turns, 60, 2024):
    for m in t.seeker_messages:
        if m not in msgs:
            msgs.append(m)
msgs = msgs[:n]
a = ArtifactStore(pathlib.Path(".cache/artifacts"))
name, path = resolve_model(preset, a)
rows = []
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
with LocalLLMServer(path, model_name=name, n_threads=threads, n_parallel=1) as server:
    llm = OpenAIClient(base_url=server.base_url, model=server.model, timeout_s=None)
    planner = Planner(llm, PromptLibrary(), attributes=index.attributes,
                      genres=sorted(index.values.get("genres", {}).values()))
    for m in msgs:
        t0 = time.perf_counter()
        try:
            p = planner.plan(m[:2000], PreferenceProfile(), [])
            rows.append({"message": m[:300], "seconds": round(time.perf_counter() - t0, 2),
                         "valid": not p.repairs, "repairs": [r.kind for r in p.repairs],
                         "plan": [s.tool for s in p.steps], "raw": p.raw})
        except Exception as e:
            rows.append({"message": m[:300], "seconds": round(time.perf_counter() - t0, 2),
                         "valid": False, "error": f"{type(e).__name__}: {e}"[:300]})
        out.write_text(json.dumps({"model": name, "messages": rows}, indent=1))
        print(rows[-1], flush=True)
