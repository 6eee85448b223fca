"""The chat's SSE response holds its headers until its first event (app/http/event_stream.py):
the answer's first step, which asks the upstream, runs before anything is written to the
client. Driven as the ASGI server drives it, with sse-starlette's response for contrast."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message

from app.http.event_stream import EventStream

SCOPE = {"type": "http", "method": "POST", "path": "/api/chat", "headers": []}


def _sent(
    response_class: type[EventSourceResponse], sent: list[str], *, fail: bool = False
) -> list[str]:
    """What the response sends, into ``sent`` (also returned), each message named with
    whether the body had started."""
    started = False

    async def body() -> AsyncIterator[ServerSentEvent]:
        nonlocal started
        started = True  # the answer's first step: the upstream is asked here
        if fail:
            raise RuntimeError("the answer failed before its first event")
        yield ServerSentEvent(data="{}", event="meta")
        yield ServerSentEvent(data="{}", event="sources")

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays: the stream ends on its own
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(f"{message['type']} after={started}")

    async def main() -> None:
        await response_class(body(), ping=0)(SCOPE, receive, send)

    asyncio.run(main())
    return sent


def test_the_headers_leave_with_the_first_event_after_the_first_step() -> None:
    assert _sent(EventStream, []) == [
        "http.response.start after=True",
        "http.response.body after=True",
        "http.response.body after=True",
        "http.response.body after=True",  # the end of the body
    ]
    # sse-starlette's own writes them before the body's first step.
    assert _sent(EventSourceResponse, [])[0] == "http.response.start after=False"


def test_a_body_that_fails_before_its_first_event_leaves_the_response_unstarted() -> None:
    """Nothing was sent, so the server answers 500 instead of a 200 cut short."""
    sent: list[str] = []
    with pytest.raises(RuntimeError, match="before its first event"):
        _sent(EventStream, sent, fail=True)
    assert sent == []


@pytest.mark.parametrize("ending", ["end", "failure", "cancel"])
def test_on_close_runs_once_however_the_response_ends(ending: str) -> None:
    """After the body's end, after a body that failed, and when the response is cancelled
    while its body waits (the server shutting down): ``on_close`` is awaited once."""
    closed: list[str] = []
    first_sent = asyncio.Event()

    async def body() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data="{}", event="meta")
        if ending == "failure":
            raise RuntimeError("the answer failed")
        if ending == "cancel":
            await asyncio.Event().wait()

    async def on_close() -> None:
        closed.append(ending)

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            first_sent.set()

    async def main() -> None:
        response = EventStream(body(), ping=0, on_close=on_close)
        task = asyncio.create_task(response(SCOPE, receive, send))
        if ending == "cancel":
            await first_sent.wait()
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed == [ending]
