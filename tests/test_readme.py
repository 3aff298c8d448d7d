"""The README's Python snippets run as written: a new user copies them first.

Each ```python block runs in a fresh interpreter whose home (~) holds a recagent cache
with MovieLens 100K ingested and the test model files, so `~/.cache/recagent` in the
snippet is a real, ready catalog and the embedded model starts for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, ml100k_home

from recagent.llm.backends.artifacts import ArtifactStore
from retrieval.embeddings import Embedder

SNIPPETS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"),
                      flags=re.S)


def test_the_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 2


@pytest.fixture(scope="module")
def user_home(tmp_path_factory: pytest.TempPathFactory, artifact_store: ArtifactStore,
              embedder: Embedder) -> Path:
    home = tmp_path_factory.mktemp("user")
    (home / ".cache").mkdir()
    (home / ".cache" / "recagent").symlink_to(
        ml100k_home(tmp_path_factory, artifact_store, embedder))
    return home


@pytest.mark.integration
@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{n}" for n in range(len(SNIPPETS))])
def test_snippet_runs_as_written(snippet: str, user_home: Path) -> None:
    env = {**os.environ, "HOME": str(user_home), "HF_HUB_OFFLINE": "1",
           "ANONYMIZED_TELEMETRY": "False"}
    done = subprocess.run([sys.executable, "-c", snippet], cwd=user_home, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()  # every snippet prints what it got
