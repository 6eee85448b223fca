"""Layer 1, input bounds: cheap checks with no I/O, before anything is reserved or called."""

from __future__ import annotations

from app.caps.refusal import INPUT_BOUNDS, CapRefused
from app.settings import Settings


def check_input_bounds(settings: Settings, *, message: str, max_tokens: int | None) -> int:
    """Returns the max_tokens to use; raises 413 for input past the configured bounds."""
    if len(message) > settings.max_message_chars:
        raise CapRefused(
            INPUT_BOUNDS,
            413,
            f"Your message is too long: at most {settings.max_message_chars} characters, please.",
        )
    if max_tokens is not None and max_tokens > settings.llm_max_tokens:
        raise CapRefused(INPUT_BOUNDS, 413, f"max_tokens may be at most {settings.llm_max_tokens}.")
    return max_tokens or settings.llm_max_tokens
