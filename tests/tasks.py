"""Which tasks code starts on the running event loop (each costs a turn of a busy loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def started_tasks() -> Iterator[list[object]]:
    """Yield a list that collects the coroutine of every task started on the running loop
    inside the block (through the loop's task factory, which `asyncio.create_task`,
    `ensure_future` and `wait_for` all use); call it from a coroutine."""
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    created: list[object] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kw)

    loop.set_task_factory(counting)
    try:
        yield created
    finally:
        loop.set_task_factory(previous)
