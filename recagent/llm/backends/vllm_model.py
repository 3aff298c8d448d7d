"""A preset's GGUF as a Hugging Face folder that vLLM can load, made once per cache.

vLLM cannot load the presets' quantised GGUF files, and recagent never fetches weights
from a model hub, so the verified GGUF from the artifact store is dequantised to a
float32 Hugging Face folder (weights, config, tokenizer with its chat template) by
`gguf_to_hf.py`. That script needs transformers and torch, which live only in the vLLM
environment, so it runs with that environment's python as a subprocess.

The folder is named after the GGUF's sha256, so a different file never reuses it, and
it appears atomically (built in a temporary folder, then renamed): a folder that
exists is complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recagent.errors import ConfigError, ModelArtifactError
from recagent.llm.backends.artifacts import ARTIFACTS, ArtifactStore
from recagent.llm.backends.presets import PRESETS, Preset, find_preset

CONVERTER = Path(__file__).with_name("gguf_to_hf.py")
"""Run by the vLLM environment's python; imports nothing from recagent."""


@dataclass(frozen=True)
class PreparedModel:
    name: str
    folder: Path
    converted_s: float
    """Seconds spent converting now; 0 when the folder was already there."""


class VLLMModelPreparer:
    """Turns presets into vLLM-loadable folders under `models_dir`, converting with
    `python` (the vLLM environment's interpreter)."""

    def __init__(self, store: ArtifactStore, models_dir: Path, *, python: Path,
                 timeout_s: float = 1800.0) -> None:
        self.store = store
        self.models_dir = Path(models_dir)
        self.python = Path(python)
        self.timeout_s = timeout_s

    def folder_for(self, preset: str) -> Path:
        """Where the converted preset lives (whether or not it exists yet)."""
        found = self._preset(preset)  # an alias shares its preset's folder
        return self.models_dir / f"{found.name}-{ARTIFACTS[found.artifact].sha256[:12]}"

    def prepare(self, preset: str) -> PreparedModel:
        """The folder of `preset`, converting its verified GGUF first if needed."""
        found = self._preset(preset)
        folder = self.folder_for(found.name)
        if folder.is_dir():
            return PreparedModel(found.name, folder, 0.0)
        check_python(self.python)  # before fetching the GGUF that it could not convert
        gguf = self.store.path(found.artifact)
        began = time.perf_counter()
        convert(gguf, folder, python=self.python, timeout_s=self.timeout_s)
        return PreparedModel(found.name, folder, time.perf_counter() - began)

    @staticmethod
    def _preset(name: str) -> Preset:
        found = find_preset(name)
        if found is None:
            raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return found


def convert(gguf: Path, folder: Path, *, python: Path, timeout_s: float = 1800.0) -> None:
    """Write the Hugging Face folder for `gguf` to `folder`, atomically."""
    check_python(python)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        # -P: the script's folder is not put on sys.path (recagent/types.py shadows `types`)
        cmd = [str(python), "-P", str(CONVERTER), str(gguf), str(tmp)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  check=False, env=_converter_env())
        except subprocess.TimeoutExpired as e:
            raise ModelArtifactError(f"converting {gguf} took longer than {timeout_s:.0f} s") \
                from e
        if done.returncode != 0:
            raise ModelArtifactError(
                f"converting {gguf} to a Hugging Face folder failed (exit {done.returncode}):\n"
                f"{done.stderr.strip()[-3000:]}"
            )
        if not (tmp / "config.json").is_file():
            raise ModelArtifactError(f"the converter wrote no config.json for {gguf}")
        tmp.chmod(0o755)  # mkdtemp's 0700 is for the unfinished folder only
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_python(python: Path) -> None:
    if not Path(python).is_file():
        raise ConfigError(f"{python} does not exist: build the vLLM environment with "
                          "`make vllm-venv` or pass its python (--vllm-python)")


def _converter_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
