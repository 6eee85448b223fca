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
"""

from __future__ import annotations

import asyncio

from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send


class EventStream(EventSourceResponse):
    """`EventSourceResponse` (same arguments) with ``http.response.start`` held until the
    first body message, then sent just before it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
