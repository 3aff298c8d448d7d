"""Pinned model files and presets: a bad cache or a bad name is an error that says what to do."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from recagent.errors import ConfigError, ModelArtifactError
from recagent.llm.backends.artifacts import ARTIFACTS, ArtifactStore
from recagent.llm.backends.presets import DEFAULT_PRESET, PRESETS, resolve_model


@pytest.fixture
def corruptible_cache(artifact_store: ArtifactStore, tmp_path: Path) -> ArtifactStore:
    """A private cache holding a good copy of the SmolLM2 file, free to damage."""
    good = artifact_store.path("smollm2-135m")
    shutil.copyfile(good, tmp_path / good.name)
    return ArtifactStore(tmp_path, allow_fetch=False)


def test_a_good_copy_passes(corruptible_cache: ArtifactStore) -> None:
    path = corruptible_cache.path("smollm2-135m")
    assert path.parent == corruptible_cache.cache_dir


def test_garbage_in_the_cached_file_is_refused(corruptible_cache: ArtifactStore) -> None:
    target = corruptible_cache.cache_dir / ARTIFACTS["smollm2-135m"].filename
    with target.open("r+b") as f:  # same size, different bytes: only the sha256 can tell
        f.seek(target.stat().st_size // 2)
        f.write(b"garbage!" * 16)
    with pytest.raises(ModelArtifactError, match="sha256"):
        corruptible_cache.path("smollm2-135m")


def test_a_truncated_cached_file_is_refused(corruptible_cache: ArtifactStore) -> None:
    target = corruptible_cache.cache_dir / ARTIFACTS["smollm2-135m"].filename
    with target.open("r+b") as f:
        f.truncate(1000)
    with pytest.raises(ModelArtifactError, match="delete it and fetch again"):
        corruptible_cache.path("smollm2-135m")


def test_a_missing_file_without_fetching_says_how_to_fetch(tmp_path: Path) -> None:
    hint = re.escape("recagent models fetch qwen2.5-coder-0.5b")
    with pytest.raises(ModelArtifactError, match=hint):
        ArtifactStore(tmp_path, allow_fetch=False).path("qwen2.5-coder-0.5b")


def test_unknown_artifact_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match=r"unknown artifact 'llama-70b'.*smollm2-135m"):
        ArtifactStore(tmp_path).path("llama-70b")


def test_every_preset_points_to_a_pinned_artifact() -> None:
    assert DEFAULT_PRESET in PRESETS
    for preset in PRESETS.values():
        artifact = ARTIFACTS[preset.artifact]
        assert artifact.filename.endswith(".gguf")
        assert len(artifact.sha256) == 64 and artifact.size > 0
        assert preset.n_ctx > 0 and preset.description


def test_split_artifacts_list_their_parts_in_order() -> None:
    for name, count in [("qwen2.5-coder-0.5b", 6), ("qwen2.5-coder-1.5b", 22)]:
        members = [p.member for p in ARTIFACTS[name].parts]
        assert len(members) == count
        assert [m.rsplit("/part", 1)[1] for m in members] == [
            f"{n:02d}.bin" for n in range(1, count + 1)
        ]


def test_resolve_model_bad_spec_names_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model("gpt-5", ArtifactStore(tmp_path, allow_fetch=False))
    for name in PRESETS:
        assert name in str(caught.value)


def test_resolve_model_missing_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"), ArtifactStore(tmp_path))


def test_resolve_model_refuses_a_gguf_path_that_is_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("hello")
    with pytest.raises(ModelArtifactError, match="not a GGUF"):
        resolve_model(str(fake), ArtifactStore(tmp_path))


def test_resolve_model_takes_any_gguf_path(tmp_path: Path) -> None:
    model = tmp_path / "My-Model.Q8_0.gguf"
    model.write_bytes(b"GGUF" + bytes(20))
    assert resolve_model(str(model), ArtifactStore(tmp_path)) == ("My-Model.Q8_0", model)


def test_resolve_model_preset_comes_from_the_store(artifact_store: ArtifactStore) -> None:
    name, path = resolve_model("smollm2-135m", artifact_store)
    assert name == "smollm2-135m"
    assert path == artifact_store.path("smollm2-135m")
