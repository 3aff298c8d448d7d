"""`recagent models list` shows names, aliases and sources; `models fetch` takes hf: specs.

In-process through `main`, with the Hub client offline: nothing here reaches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest

from recagent.cli.main import main
from recagent.llm.backends.artifacts import ARTIFACTS, ArtifactStore

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SPEC = f"hf:someone/smol-GGUF/SmolLM2.gguf@{COMMIT}"


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_list_marks_the_old_names_as_aliases_of_coder_models(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--home", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    alias = next(line for line in lines if line.split()[:1] == ["qwen2.5-0.5b"])
    assert alias.endswith(
        "alias of qwen2.5-coder-0.5b (kept for old configs; it is a coder model)")
    default = next(line for line in lines if "qwen2.5-coder-0.5b " in line)
    assert default.endswith("(default)") and not default.startswith("*")  # nothing cached
    assert sum("source: " in line for line in lines) == 3


def test_list_as_json_gives_sources_hashes_and_aliases(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--home", str(tmp_path), "--json"]) == 0
    rows = {r["preset"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert rows["qwen2.5-coder-1.5b"]["aliases"] == ["qwen2.5-1.5b"]
    assert rows["qwen2.5-coder-1.5b"]["sha256"] == ARTIFACTS["qwen2.5-coder-1.5b"].sha256
    assert "Apache-2.0" in rows["smollm2-135m"]["source"]
    assert [r["preset"] for r in rows.values() if r["default"]] == ["qwen2.5-coder-0.5b"]


def test_fetch_finds_a_hub_model_already_in_the_cache(
        tmp_path: Path, artifact_store: ArtifactStore,
        capsys: pytest.CaptureFixture[str]) -> None:
    smol = artifact_store.path("smollm2-135m")
    snapshot = (tmp_path / "artifacts" / "hf" / "models--someone--smol-GGUF" / "snapshots"
                / COMMIT)
    snapshot.mkdir(parents=True)
    (snapshot / "SmolLM2.gguf").symlink_to(smol.resolve())
    sha = ARTIFACTS["smollm2-135m"].sha256
    assert main(["models", "fetch", f"{SPEC}#sha256={sha}", "--home", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(snapshot / "SmolLM2.gguf")


def test_fetch_offline_of_a_model_not_cached_exits_2_with_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", SPEC, "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not cached" in err and f"HF_HUB_OFFLINE=0 recagent models fetch '{SPEC}'" in err


def test_fetch_of_an_unpinned_hub_model_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "fetch", "hf:someone/smol-GGUF/SmolLM2.gguf",
                 "--home", str(tmp_path)]) == 2
    assert "no @REVISION" in capsys.readouterr().err
