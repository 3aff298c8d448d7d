"""The `recagent` CLI with a real vLLM: `models prepare-vllm` and `serve-llm --backend vllm`.

Runs after tests/test_vllm.py has stopped its server, so that two vLLM servers never
hold memory at once. Fails without .venv-vllm, like every `vllm` test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.vllm_model import PreparedModel

pytestmark = pytest.mark.vllm

PRESET = "smollm2-135m"


def test_cli_prepare_vllm_reuses_the_folder(artifact_store: ArtifactStore,
                                            vllm_prepared: PreparedModel, vllm_python: Path,
                                            tmp_path: Path) -> None:
    home = _home(tmp_path, artifact_store, vllm_prepared)
    done = subprocess.run([sys.executable, "-m", "recagent.cli", "models", "prepare-vllm", PRESET,
                           "--home", str(home), "--vllm-python", str(vllm_python)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{home / 'vllm-models' / vllm_prepared.folder.name}  " \
                                  "(already prepared)"


def test_cli_serves_a_preset_with_vllm_and_sigterm_stops_it(
    artifact_store: ArtifactStore, vllm_prepared: PreparedModel, vllm_python: Path, tmp_path: Path
) -> None:
    """`recagent serve-llm --backend vllm` reuses the prepared folder, prints its URL, and on
    SIGTERM takes the vLLM process group down with it (no orphaned server)."""
    home = _home(tmp_path, artifact_store, vllm_prepared)
    cmd = [sys.executable, "-m", "recagent.cli", "serve-llm", "--backend", "vllm", "--model",
           PRESET, "--home", str(home), "--port", "0", "--vllm-python", str(vllm_python)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"serving {PRESET} at http://127.0.0.1:"), first
        children = _children(proc.pid)
        assert len(children) == 1  # the vLLM api_server, leader of its own process group
        assert _group(children[0])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        deadline = time.monotonic() + 30
        while _group(children[0]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _group(children[0]) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _home(tmp_path: Path, artifact_store: ArtifactStore, vllm_prepared: PreparedModel) -> Path:
    """A recagent home that shares the test session's artifacts and converted models."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "artifacts").symlink_to(artifact_store.cache_dir.resolve())
    (home / "vllm-models").symlink_to(vllm_prepared.folder.parent.resolve())
    return home


def _children(pid: int) -> list[int]:
    return [p for p, (ppid, _) in _processes().items() if ppid == pid]


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    return [p for p, (_, group) in _processes().items() if group == pgid]


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process, from /proc."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(stat.parent.name)] = (int(fields[1]), int(fields[2]))
    return out
