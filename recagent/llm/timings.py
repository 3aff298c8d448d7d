"""Where an LLM call's time went, as the server reports it: reading the prompt and
generating (llama.cpp's `timings` beside the OpenAI fields); nothing when it does not say."""

from __future__ import annotations

from typing import Any


def server_timings(extra: dict[str, Any] | None) -> dict[str, float | None]:
    """`Usage`'s prompt_s and generation_s from a chat completion's extra fields."""
    timings = (extra or {}).get("timings") or {}
    return {"prompt_s": _seconds(timings.get("prompt_ms")),
            "generation_s": _seconds(timings.get("predicted_ms"))}


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000 if isinstance(ms, int | float) and ms >= 0 else None
