"""What a streamed answer yields: text deltas, then one `Finished` with the usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TextDelta:
    text: str
    model: str


@dataclass(frozen=True)
class Finished:
    model: str
    reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int
    attempts: int = 1


def finished_from_usage(model: str, reason: str | None, usage: dict[str, Any]) -> Finished:
    """The `Finished` of a stream from its `usage` object (OpenAI's chunk field)."""
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    return Finished(
        model, reason, usage.get("prompt_tokens"), usage.get("completion_tokens"), cached
    )


def with_attempts(event: Finished, attempts: int) -> Finished:
    return Finished(
        event.model,
        event.reason,
        event.input_tokens,
        event.output_tokens,
        event.cached_input_tokens,
        attempts,
    )
