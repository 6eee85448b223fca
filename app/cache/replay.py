"""A cached answer streamed like a live one: the same events an upstream stream yields."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from app.llm.client import Finished, TextDelta

CACHE_HIT = "cache_hit"  # the `Finished.reason` of a replayed answer
_PIECES = re.compile(r"\S+\s*")


async def replay(
    answer: str, model: str, *, reason: str = CACHE_HIT
) -> AsyncIterator[TextDelta | Finished]:
    """`answer` as word-sized deltas, then a `Finished` with zero tokens and zero attempts
    (nothing went upstream) and `reason` (``cache_hit``; the local "I don't know" uses it
    too, with its own reason)."""
    for piece in _PIECES.findall(answer):
        yield TextDelta(piece, model)
    yield Finished(
        model=model,
        reason=reason,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        attempts=0,
    )
