"""`hf:` model specs: the grammar, the offline error path, and files found in a local Hub cache.

No test here reaches the network: stores are built with allow_fetch=False, or the Hub
client is put in offline mode, and the files are placed in huggingface_hub's cache layout
by the test (the real SmolLM2 GGUF, linked from the session's model cache).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest

from recagent.errors import ConfigError, ModelArtifactError
from recagent.llm.backends.artifacts import ARTIFACTS, ArtifactStore
from recagent.llm.backends.hub import HubModels, HubSpec
from recagent.llm.backends.presets import resolve_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SMOL_SHA = ARTIFACTS["smollm2-135m"].sha256
SPEC = f"hf:someone/smol-GGUF/models/SmolLM2.Q4_1.gguf@{COMMIT}"


def place(cache: Path, repo_id: str, filename: str, source: Path, *, tag: str | None = None,
          link: bool = True) -> Path:
    """`source` put where huggingface_hub keeps `filename` of `repo_id` at COMMIT (and
    `tag` pointing at COMMIT), as a real download would leave it."""
    repo = cache / "hf" / f"models--{repo_id.replace('/', '--')}"
    target = repo / "snapshots" / COMMIT / filename
    target.parent.mkdir(parents=True)
    if link:
        target.symlink_to(source.resolve())
    else:
        shutil.copyfile(source, target)
    if tag:
        (repo / "refs").mkdir()
        (repo / "refs" / tag).write_text(COMMIT)
    return target


@pytest.fixture
def smol(artifact_store: ArtifactStore) -> Path:
    return artifact_store.path("smollm2-135m")


# ---- the grammar ---------------------------------------------------------------------


def test_a_full_spec_parses_into_its_parts() -> None:
    spec = HubSpec.parse(f"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/sub/dir/q4_k_m.GGUF@{COMMIT}"
                         f"#sha256={SMOL_SHA.upper()}")
    assert spec == HubSpec("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "sub/dir/q4_k_m.GGUF", COMMIT,
                           SMOL_SHA)
    assert spec.name == f"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/sub/dir/q4_k_m.GGUF@{COMMIT}"
    assert spec.spec == f"{spec.name}#sha256={SMOL_SHA}"


def test_a_tag_is_a_revision_and_the_hash_is_optional() -> None:
    assert HubSpec.parse("hf:owner/repo/model.gguf@v1.0") == \
        HubSpec("owner/repo", "model.gguf", "v1.0", None)


@pytest.mark.parametrize(("spec", "problem"), [
    ("hf:owner/repo/model.gguf", "no @REVISION"),
    ("hf:owner/repo/model.gguf@", "empty revision"),
    ("hf:owner/repo/model.gguf@main", "is a branch and moves"),
    ("hf:owner/repo/model.gguf@master", "is a branch and moves"),
    ("hf:owner/repo/model.gguf@0123abc", "shortened commit hash"),
    ("hf:owner/repo/model.gguf@v1..2", "not a commit hash or a tag"),
    ("hf:owner/repo/model.gguf@-x", "not a commit hash or a tag"),
    ("hf:owner/repo/model.safetensors@v1", "not a .gguf file"),
    ("hf:owner/model.gguf@v1", "not a path inside the repository"),
    ("hf:owner/repo/../model.gguf@v1", "not a path inside the repository"),
    ("hf:owner/repo//model.gguf@v1", "not a path inside the repository"),
    ("hf:own--er/repo/model.gguf@v1", "owner 'own--er' is not a Hub name"),
    ("hf:owner/-repo/model.gguf@v1", "repository '-repo' is not a Hub name"),
    ("hf:owner/repo/my model.gguf@v1", "white space"),
    ("hf:", "empty"),
    ("hf:owner/repo/model.gguf@v1#md5=abc", "sha256= and 64 hex digits"),
    (f"hf:owner/repo/model.gguf@v1#sha256={SMOL_SHA[:-1]}", "sha256= and 64 hex digits"),
])
def test_a_bad_spec_is_a_config_error_naming_the_problem(spec: str, problem: str,
                                                         tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        resolve_model(spec, ArtifactStore(tmp_path, allow_fetch=False))
    assert "hf:OWNER/REPO/PATH/FILE.gguf@REVISION" in str(caught.value)
    assert not (tmp_path / "hf").exists()  # refused before the Hub client ran


def test_an_unknown_model_names_the_hub_grammar(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hf:OWNER/REPO/PATH/FILE\.gguf@REVISION"):
        resolve_model("llama-70b", ArtifactStore(tmp_path, allow_fetch=False))


# ---- offline: not cached -------------------------------------------------------------


def test_offline_a_model_not_cached_says_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model(SPEC, ArtifactStore(tmp_path, allow_fetch=False))
    message = str(caught.value)
    assert "is not cached" in message
    assert f"HF_HUB_OFFLINE=0 recagent models fetch '{SPEC}'" in message


def test_with_the_hub_offline_a_fetch_is_the_same_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """allow_fetch=True, but HF_HUB_OFFLINE (the project's default) stops the download."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = f"hf:someone/smol-GGUF/model.gguf@v2#sha256={SMOL_SHA}"
    with pytest.raises(ConfigError, match="is not cached") as caught:
        resolve_model(spec, ArtifactStore(tmp_path))
    assert f"models fetch '{spec}'" in str(caught.value)  # the hash travels with the advice


# ---- a file in the local cache -------------------------------------------------------


def test_a_cached_file_resolves_without_network(tmp_path: Path, smol: Path) -> None:
    target = place(tmp_path, "someone/smol-GGUF", "models/SmolLM2.Q4_1.gguf", smol)
    name, path = resolve_model(SPEC, ArtifactStore(tmp_path, allow_fetch=False))
    assert name == SPEC
    assert path == target and path.resolve() == smol.resolve()
    record = target.with_name("SmolLM2.Q4_1.gguf.sha256")
    assert record.read_text() == f"{SMOL_SHA}  SmolLM2.Q4_1.gguf\n"  # sha256sum's format


def test_a_tag_resolves_through_the_cached_ref(tmp_path: Path, smol: Path) -> None:
    target = place(tmp_path, "someone/smol-GGUF", "SmolLM2.gguf", smol, tag="v1.0")
    spec = f"hf:someone/smol-GGUF/SmolLM2.gguf@v1.0#sha256={SMOL_SHA}"
    assert resolve_model(spec, ArtifactStore(tmp_path, allow_fetch=False)) == (
        "hf:someone/smol-GGUF/SmolLM2.gguf@v1.0", target)


def test_a_file_at_another_revision_is_not_taken(tmp_path: Path, smol: Path) -> None:
    place(tmp_path, "someone/smol-GGUF", "models/SmolLM2.Q4_1.gguf", smol, tag="v1.0")
    with pytest.raises(ConfigError, match="is not cached"):
        resolve_model(SPEC.replace(COMMIT, "v2.0"), ArtifactStore(tmp_path, allow_fetch=False))


def test_a_pinned_sha256_that_does_not_match_is_refused(tmp_path: Path, smol: Path) -> None:
    place(tmp_path, "someone/smol-GGUF", "models/SmolLM2.Q4_1.gguf", smol)
    wrong = "0" * 64
    with pytest.raises(ModelArtifactError, match=f"pins {wrong}") as caught:
        resolve_model(f"{SPEC}#sha256={wrong}", ArtifactStore(tmp_path, allow_fetch=False))
    assert SMOL_SHA in str(caught.value)  # the hash it has, to compare with the Hub's


def test_a_file_changed_after_its_first_use_is_refused(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF" + bytes(60))
    target = place(tmp_path, "someone/tiny", "tiny.gguf", tiny, link=False)
    models = HubModels(tmp_path / "hf", allow_fetch=False)
    spec = HubSpec.parse(f"hf:someone/tiny/tiny.gguf@{COMMIT}")
    assert models.path(spec) == target  # first use: its sha256 is recorded
    with target.open("r+b") as f:
        f.seek(30)
        f.write(b"changed")
    with pytest.raises(ModelArtifactError, match="no longer matches the sha256 recorded"):
        models.path(spec)


def test_a_cached_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    html = tmp_path / "page.gguf"
    html.write_text("<html>rate limited</html>")
    place(tmp_path, "someone/tiny", "tiny.gguf", html, link=False)
    with pytest.raises(ModelArtifactError, match="not a GGUF"):
        resolve_model(f"hf:someone/tiny/tiny.gguf@{COMMIT}",
                      ArtifactStore(tmp_path, allow_fetch=False))
