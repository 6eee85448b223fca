"""A cached answer streamed like a live one: the same events an upstream stream yields."""

from __future__ import annotations

import asyncio
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
    too, with its own reason). Each delta is followed by a turn of the event loop, so a
    reader that keeps up sends each as its own event, as it would a live answer's (pieces
    that queue up while the reader is busy go out together: app/shutdown.py)."""
    for piece in _PIECES.findall(answer):
        yield TextDelta(piece, model)
        await asyncio.sleep(0)
    yield Finished(
        model=model,
        reason=reason,
        input_tokens=0,
        output_tokens=0,
        cached_input_tokens=0,
        attempts=0,
    )
