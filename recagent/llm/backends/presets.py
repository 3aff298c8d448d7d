"""Named local models, so users pick "qwen2.5-0.5b" rather than a file path and a hash.

Each preset names a pinned artifact (recagent/artifacts.py), which arrives from PyPI
and is checked against its sha256 before use. Speeds are decode tokens per second
measured with benchmarks/bench_llm.py on the 2-core CPU machine (no GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.llamacpp import check_gguf


@dataclass(frozen=True)
class Preset:
    name: str
    artifact: str
    description: str
    n_ctx: int
    """Default context per request; prompts with ~50 candidates fit in 4096."""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smollm2-135m",
            artifact="smollm2-135m",
            description=(
                "SmolLM2-135M-Instruct Q4_1, 98 MB: fast (~75 tok/s decode) but weak at "
                "following ranking instructions; for tests and smoke runs"
            ),
            n_ctx=4096,
        ),
        Preset(
            name="qwen2.5-0.5b",
            artifact="qwen2.5-coder-0.5b",
            description=(
                "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB: ~30 tok/s decode; "
                "the balance of speed and instruction following"
            ),
            n_ctx=4096,
        ),
        Preset(
            name="qwen2.5-1.5b",
            artifact="qwen2.5-coder-1.5b",
            description=(
                "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: ~10 tok/s decode; "
                "best answers, slow on CPU"
            ),
            n_ctx=4096,
        ),
    )
}

DEFAULT_PRESET = "qwen2.5-0.5b"


def resolve_model(spec: str, store: ArtifactStore) -> tuple[str, Path]:
    """(model name, verified local .gguf) for a preset name or a path to a .gguf file."""
    preset = PRESETS.get(spec)
    if preset is not None:
        return preset.name, store.path(preset.artifact)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        check_gguf(path)
        return path.stem, path
    raise ConfigError(
        f"unknown model {spec!r}: give a preset ({', '.join(PRESETS)}) "
        "or the path to a .gguf file"
    )

