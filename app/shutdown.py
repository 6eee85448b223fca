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
from typing import TypeVar, cast

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
) -> AsyncGenerator[list[T], None]:
    """Yield `source`'s items in batches until `stop` fires; then cancel and close `source`
    and raise `ShuttingDown`. With no `stop`, a plain pass-through of batches of one.

    A batch is every item the source produced while its reader was busy, in order: one
    item while the reader keeps up, several when the event loop is behind (a batch of
    answer pieces is relayed as one event: app/chat.py). No item waits for another."""
    if stop is None:
        try:
            async for item in source:
                yield [item]
        finally:
            await _close(source)
        return
    # One task pumps `source` into a queue and one waits for `stop`; the answer reads the
    # queue. A task and an `asyncio.wait` per item (the old race) cost more of the event
    # loop than relaying the item did at 50 concurrent streams (issue 17's profile).
    items: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
    pumping = asyncio.ensure_future(_pump(source, items))
    stopping = asyncio.ensure_future(_signal(stop, items))
    try:
        while True:
            kind, value = await items.get()
            batch: list[T] = []
            while kind == "item":
                batch.append(cast(T, value))
                if items.empty():
                    break
                kind, value = items.get_nowait()
            if batch:
                yield batch
            if kind == "item":
                continue
            if kind == "end":
                return
            if kind == "error":
                raise cast(BaseException, value)
            # "stop": cancel the source, which closes the upstream request
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping
            raise ShuttingDown
    finally:
        stopping.cancel()
        if not pumping.done():
            pumping.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await pumping


async def _pump(source: AsyncIterator[T], items: asyncio.Queue[tuple[str, object]]) -> None:
    """Read `source` ahead of its reader (items are small: text deltas), in one task, which
    also closes it however it ends."""
    try:
        async for item in source:
            items.put_nowait(("item", item))
        items.put_nowait(("end", None))
    except Exception as err:  # the reader raises it; cancellation just ends the pump
        items.put_nowait(("error", err))
    finally:
        with anyio.CancelScope(shield=True):
            await _close(source)


async def _signal(stop: StopSignal, items: asyncio.Queue[tuple[str, object]]) -> None:
    await stop.wait()
    items.put_nowait(("stop", None))


async def _close(source: AsyncIterator[object]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()
