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
from typing import Generic, TypeVar, cast

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


class Relay(Generic[T]):
    """`source` read ahead in its own task from the moment the relay is made: the answer
    asks the upstream before its first events go out, and its first piece is on its way
    meanwhile (app/chat.py; measured in app/http/event_stream.py).

    `batches` yields the items in batches until `stop` fires, then cancels and closes
    `source` and raises `ShuttingDown`; with no `stop`, until `source` ends. A batch is
    every item the source produced while its reader was busy, in order: one item while the
    reader keeps up, several when the event loop is behind (a batch of answer pieces is
    relayed as one event: app/chat.py). No item waits for another. `aclose` must follow,
    whatever happened (it stops and closes `source` if still running; idempotent)."""

    def __init__(self, source: AsyncIterator[T], stop: StopSignal | None) -> None:
        # One task pumps `source` into a queue and one waits for `stop`; the answer reads
        # the queue. A task and an `asyncio.wait` per item (the old race) cost more of the
        # event loop than relaying the item did at 50 concurrent streams (issue 17).
        self._items: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._pumping = asyncio.ensure_future(_pump(source, self._items))
        self._stopping = None if stop is None else asyncio.ensure_future(_signal(stop, self._items))

    async def batches(self) -> AsyncGenerator[list[T], None]:
        """The items in batches (class docstring). Raises what `source` raised, and
        `ShuttingDown` when `stop` fired."""
        items = self._items
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
            self._pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pumping
            raise ShuttingDown

    async def aclose(self) -> None:
        """Stop waiting for `stop`, and cancel and close `source` if it is still read (the
        upstream request is closed); shielded: a cancelled caller still closes it."""
        if self._stopping is not None:
            self._stopping.cancel()
        if not self._pumping.done():
            self._pumping.cancel()
            with anyio.CancelScope(shield=True), contextlib.suppress(BaseException):
                await self._pumping


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
