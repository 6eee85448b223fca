"""Ending live answers cleanly when the server shuts down.

On SIGTERM, uvicorn stops accepting connections and waits up to ``SHUTDOWN_GRACE_S`` for
open ones; sse-starlette sets each stream's shutdown event at once. A live answer may go
on streaming for `finish_window_s` after that; then it is stopped, settled, and ends with
``event: error`` (kind ``shutdown``) and a properly closed body, well before the server's
grace runs out and it would cancel the stream mid-chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import anyio

T = TypeVar("T")
SHUTDOWN_MESSAGE = "The service is restarting, so this answer was cut short. Ask again in a moment."
SETTLE_RESERVE_S = 3.0  # left of the grace for settling and closing, after the window


def finish_window_s(grace_s: float) -> float:
    """Seconds a live answer may go on streaming after the shutdown signal: the grace less
    `SETTLE_RESERVE_S` (or half the grace when that is short), never negative."""
    return max(grace_s - SETTLE_RESERVE_S, grace_s / 2, 0.0)


class ShuttingDown(Exception):
    """Raised in place of the next event when the answer's finish window has run out."""


@dataclass
class StopSignal:
    """Fires `after_s` seconds after `event` (the stream's shutdown event) is set."""

    event: anyio.Event
    after_s: float

    async def wait(self) -> None:
        await self.event.wait()
        await anyio.sleep(self.after_s)


async def until_stopped(
    source: AsyncIterator[T], stop: StopSignal | None
) -> AsyncGenerator[T, None]:
    """Yield from `source` until `stop` fires; then cancel and close `source` and raise
    `ShuttingDown`. With no `stop`, a plain pass-through."""
    if stop is None:
        try:
            async for item in source:
                yield item
        finally:
            await _close(source)
        return
    waiter = asyncio.ensure_future(stop.wait())
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(source.__anext__())
            await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()  # runs the source's own cleanup (closes the upstream request)
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await step
                raise ShuttingDown
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        waiter.cancel()
        if step is not None and not step.done():
            step.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await step
        with anyio.CancelScope(shield=True):
            await _close(source)


async def _close(source: AsyncIterator[object]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
