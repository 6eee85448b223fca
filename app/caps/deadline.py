"""A deadline for a call to the rate-limit store that measures the store, not the loop.

`anyio.fail_after(0.5)` counts wall time. In an overloaded event loop the store's answer
can sit unread in the socket while the loop runs other requests; when the loop comes back
to it, the deadline has passed and a healthy store is reported as down (issue 17: false
"rate limiter unavailable" 503s with Redis at 0.2% CPU).

`store_deadline` counts only the time the loop could have attended to the call. It ticks
every `timeout_s / 10`; a tick that fires late (the loop was busy) counts for one tick,
not for the whole wait. When the budget is spent, the cancellation is queued behind the
callbacks the loop already has ready, so an answer that arrived in time is still read.
A hard limit of `WALL_FACTOR × timeout_s` of wall time bounds the wait on a store that is
really gone while the loop is also saturated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

WALL_FACTOR = 10  # a dead store behind a saturated loop is given up on after 10× the budget
_TICKS = 10
_MIN_TICK_S = 0.005


@asynccontextmanager
async def store_deadline(timeout_s: float) -> AsyncIterator[None]:
    """Raise `TimeoutError` once the block has had ``timeout_s`` seconds of the loop's
    attention (or ``WALL_FACTOR × timeout_s`` of wall time) without finishing."""
    loop = asyncio.get_running_loop()
    tick_s = max(timeout_s / _TICKS, _MIN_TICK_S)
    started = last = loop.time()
    used = 0.0
    handle: asyncio.TimerHandle | None = None
    async with asyncio.timeout(None) as timeout:

        def tick() -> None:
            nonlocal used, last, handle
            now = loop.time()
            used += min(now - last, tick_s)  # a late tick means a busy loop: count one tick
            last = now
            if used >= timeout_s or now - started >= timeout_s * WALL_FACTOR:
                # When == now: asyncio queues the cancel with call_soon, behind the I/O
                # callbacks (and the wake-ups they schedule) already ready this pass.
                timeout.reschedule(now)
            else:
                handle = loop.call_at(now + min(tick_s, timeout_s - used), tick)

        handle = loop.call_at(started + tick_s, tick)
        try:
            yield
        finally:
            if handle is not None:
                handle.cancel()
