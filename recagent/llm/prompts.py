"""Render the Jinja2 templates in `prompts/` into chat messages.

A template is plain text with role markers on their own lines (`<<system>>`,
`<<user>>`, `<<assistant>>`), so few-shot demonstrations can be real chat turns.
Values are inserted through a finaliser that defuses those markers, so an item
title or a user's words can never open a new message. The sandbox and
StrictUndefined make a missing variable an error instead of an empty string.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

from recagent.errors import ConfigError

_MARKER = re.compile(r"^<<(system|user|assistant)>>\s*$", re.MULTILINE)


@dataclass(frozen=True)
class RenderedPrompt:
    template: str
    template_hash: str
    messages: list[dict[str, str]]


def _defuse(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("<<", "\u2039\u2039").replace(">>", "\u203a\u203a")
    return value


class _PackageLoader(BaseLoader):
    """Loads templates shipped in the `prompts` package (works from a wheel or a checkout)."""

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
        node = resources.files("prompts").joinpath(template)
        if not node.is_file():
            raise TemplateNotFound(template)
        return node.read_text(encoding="utf-8"), template, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(n.name for n in resources.files("prompts").iterdir() if n.is_file())


class PromptLibrary:
    """The prompt templates, from the installed package or a folder of your own."""

    def __init__(self, folder: Path | None = None) -> None:
        loader: BaseLoader = FileSystemLoader(str(folder)) if folder else _PackageLoader()
        self._env = SandboxedEnvironment(
            loader=loader,
            undefined=StrictUndefined,
            finalize=_defuse,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )

    def names(self) -> list[str]:
        return sorted(n[:-3] for n in self._env.list_templates() if n.endswith(".j2")
                      and not n.startswith("_"))

    def check(self, names: list[str]) -> None:
        """A ConfigError naming the templates that do not exist (before any work starts)."""
        missing = [n for n in names if n not in self.names()]
        if missing:
            raise ConfigError(f"no prompt template {', '.join(map(repr, missing))}; "
                              f"available: {', '.join(self.names())}")

    def source_hash(self, name: str) -> str:
        """Hash of the template and everything it includes, so traces pin the exact prompt."""
        h = hashlib.sha256()
        for part in [f"{name}.j2", *self._includes(f"{name}.j2")]:
            source, _, _ = self._env.loader.get_source(self._env, part)  # type: ignore[union-attr]
            h.update(source.encode())
        return h.hexdigest()[:12]

    def _includes(self, filename: str) -> list[str]:
        source, _, _ = self._env.loader.get_source(self._env, filename)  # type: ignore[union-attr]
        found = re.findall(r"""{%-?\s*(?:include|import|from|extends)\s+["']([^"']+)["']""", source)
        return [f for inc in found for f in (inc, *self._includes(inc))]

    def render(self, name: str, **variables: Any) -> RenderedPrompt:
        try:
            template = self._env.get_template(f"{name}.j2")
        except TemplateNotFound:
            raise ConfigError(
                f"no prompt template {name!r}; available: {', '.join(self.names())}"
            ) from None
        text = template.render(**variables)
        return RenderedPrompt(name, self.source_hash(name), split_messages(text, name))

    def render_text(self, name: str, **variables: Any) -> str:
        """A partial template (`_name.j2`, no role markers) as plain text: the piece of a
        prompt that code must see exactly as the model did (an item's evidence lines)."""
        try:
            template = self._env.get_template(f"{name}.j2")
        except TemplateNotFound:
            raise ConfigError(f"no prompt template {name!r}") from None
        return str(template.render(**variables))


def split_messages(text: str, name: str = "<text>") -> list[dict[str, str]]:
    """Cut rendered text at role markers into chat messages; empty messages are dropped."""
    parts = _MARKER.split(text)
    if parts[0].strip():
        raise ConfigError(f"template {name!r} has text before its first role marker")
    messages = [
        {"role": role, "content": body.strip()}
        for role, body in zip(parts[1::2], parts[2::2], strict=True)
        if body.strip()
    ]
    if not messages or messages[-1]["role"] != "user":
        raise ConfigError(f"template {name!r} must end with a <<user>> message")
    return messages
