"""A Server-Sent Events response whose headers leave with its first event, not before it.

sse-starlette writes the response's headers, then asks the body for its first event. The
chat answer's first step asks the upstream for the answer (`app/chat.py`, `Relay`); with
the headers held until the first event, that request is on its way before anything is
written to the client. On this project's 2-core bench machine the header write alone
took 0.94 ms p50 inside uvicorn's `send`, nearly all of it in the socket write, which in a
bare loopback test takes 3 to 33 µs (the rest is the machine running the client it woke),
and the upstream request waited for it. With the upstream asked first (issue 17), the
first token came 1.1 to 1.2 ms sooner at p50 in three interleaved runs of 100 to 150
answers each.

Nothing else changes: the status and headers are the same, a heartbeat or the end of an
empty stream sends them first, and a body that fails before its first event leaves the
response unstarted, so the server answers 500 instead of a 200 with a broken stream.

``on_close`` runs when the response is done, however it ends (shielded from
cancellation): the chat route passes the close of an answer whose first step already ran,
so that an answer the response never read is still closed and settled (app/routes/chat.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send


class EventStream(EventSourceResponse):
    """`EventSourceResponse` (same arguments) with ``http.response.start`` held until the
    first body message, then sent just before it, and ``on_close`` (no arguments) awaited
    once the response is done, whether it ended, failed or was cancelled."""

    def __init__(
        self, *args: Any, on_close: Callable[[], Awaitable[None]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._send_held(scope, receive, send)
        finally:
            if self.on_close is not None:
                with anyio.CancelScope(shield=True):
                    await self.on_close()

    async def _send_held(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: Message | None = None
        flushing = asyncio.Lock()  # the stream and the heartbeat may send at once

        async def start_with_first(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                held = message
                return
            if held is not None:
                async with flushing:
                    if held is not None:  # cleared only once sent: a second sender waits
                        await send(held)
                        held = None
            await send(message)

        await super().__call__(scope, receive, start_with_first)
