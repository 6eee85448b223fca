"""The replica's background jobs: each runs on a timer for the app's lifetime and must
outlive any one failure, which is logged and retried on the next run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("ragship.background")


async def repeat(
    job: Callable[[], Awaitable[object]], *, every_s: float, what: str, first_now: bool
) -> None:
    """Await `job()` every `every_s` seconds until cancelled, the first run at once when
    `first_now`, else after one interval. An exception from a run is logged as
    "`what` failed" with its traceback; cancellation is not caught."""
    if not first_now:
        await asyncio.sleep(every_s)
    while True:
        try:
            await job()
        except Exception:  # the job must outlive any one failure; logged, retried
            log.exception("%s failed", what)
        await asyncio.sleep(every_s)
